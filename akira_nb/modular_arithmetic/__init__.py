"""a + b mod p, the library under the grokking experiment and 000's known-answer check: the data
(``data``), configs (``config``), the standard-attention and wave-mixer models (``models``), the
full-batch trainer with Grokfast (``train``; ``ensemble`` trains seeds at once), evaluation
and Fourier progress measures (``evaluate``, ``fourier``)."""
