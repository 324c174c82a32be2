"""The offline stand-ins (``--offline``): a tokenizer of the real vocabulary size and special id,
and random weights of the real architecture that boot through TransformerBridge."""

import pytest

from akira_nb import standins, text


@pytest.mark.parametrize(
    "name, size, eot", [("gpt2-standin", 50257, 50256), ("pythia-standin", 50277, 0)]
)
def test_standin_tokenizer_has_the_real_vocabulary_and_special_id(name, size, eot):
    tok = text.get_tokenizer(name)
    assert len(tok) == size and tok.eos_token_id == eot
    ids = tok.encode("héllo, wörld")
    assert eot not in ids and all(0 <= i < size for i in ids)
    assert tok.decode(ids + [eot]) == "héllo, wörld<|endoftext|>"
    hf = tok.to_hf()
    assert len(hf) == size and hf.eos_token_id == eot
    assert hf("héllo, wörld", add_special_tokens=False)["input_ids"] == ids


def test_offline_splits_use_the_standin_vocabulary():
    splits = text.make_splits(corpus="offline", tokenizer="gpt2-standin", seq_len=64)
    assert splits.vocab_size == 50257 and splits.eos_id == 50256
    assert int(splits.train.max()) == 50256  # the EOS between documents


def test_unknown_model_is_refused_by_name():
    with pytest.raises(ValueError, match="model='nope' has no offline stand-in"):
        standins.check_model("nope")


def test_model_folder_boots_with_the_real_shapes(tmp_path):
    from transformer_lens.model_bridge import TransformerBridge

    folder = standins.model_folder("EleutherAI/pythia-70m", root=tmp_path)
    assert standins.model_folder("EleutherAI/pythia-70m", root=tmp_path) == folder  # cached
    bridge = TransformerBridge.boot_transformers(str(folder), device="cpu")
    assert (bridge.cfg.n_layers, bridge.cfg.d_model, bridge.cfg.d_mlp) == (6, 512, 2048)
    assert bridge.cfg.d_vocab == 50304
    assert bridge.tokenizer.eos_token_id == 0
