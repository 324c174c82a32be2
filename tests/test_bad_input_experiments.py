"""Bad input to the experiments (issue 17, items 2-4 and 6-9): every external precondition (a
wandb login, a corpus, the Hub, a batch that fits the data) is checked before the run folder
exists, and a bad value is one ValueError naming the parameter, the value and what is allowed
(one ``error:`` line, exit 2, from the CLI). Nothing here trains: training is replaced by a
function that fails the test, so a check that comes too late fails fast instead of training."""

from __future__ import annotations

import re
import socketserver
import threading
import time

import pytest

from akira_nb import runtime, text
from akira_nb.__main__ import main as kit_main
from akira_nb.bandformer import train as bf_train


def _no_training(*args, **kwargs):
    raise AssertionError("training started: the bad input was not refused before it")


@pytest.fixture
def no_training(monkeypatch):
    """Training (026 / 013 / the train entry point, 033) fails the test if it starts."""
    from akira_nb.spatiotemporal import experiment as st_experiment

    monkeypatch.setattr(bf_train, "train", _no_training)
    monkeypatch.setattr(st_experiment, "train", _no_training)


@pytest.fixture
def offline_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("AKIRA_SIZE", raising=False)


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _nothing_written(root) -> bool:
    return not root.exists() or not any(root.rglob("*"))


# ----------------------------------------------------------------------------- 2: wandb login


@pytest.fixture
def no_wandb_login(tmp_path, monkeypatch):
    """A home without any wandb credentials: no WANDB_API_KEY, an empty settings folder and a
    netrc file that does not exist."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / "wandb_config"))
    monkeypatch.setenv("WANDB_DIR", str(home / "wandb_dir"))
    monkeypatch.setenv("NETRC", str(home / "no_netrc"))


def test_wandb_without_a_login_is_refused_before_the_run_folder(
    no_wandb_login, no_training, offline_hub, tmp_path, capsys
):
    root = tmp_path / "runs"
    argv = ["bandformer", "--size", "tiny", "--wandb", "--arms", "band", "--total_steps", "2"]
    assert kit_main([*argv, "--quiet", "--output_dir", str(root)]) == 2
    line = _one_error_line(capsys)
    assert "--wandb" in line and "wandb login" in line and "WANDB_API_KEY" in line, line
    assert _nothing_written(root)


def test_wandb_login_check_needs_no_login_offline_or_with_a_key(no_wandb_login, monkeypatch):
    import wandb

    from akira_nb.band_transformer import cli

    assert cli.wandb_logged_in(wandb) is False
    monkeypatch.setenv("WANDB_MODE", "offline")  # logs locally: no login needed
    assert cli.wandb_logged_in(wandb) is True
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert cli.wandb_logged_in(wandb) is True and cli.check_wandb(True) is wandb


# ----------------------------------------------------------------------------- 3: corpora, Hub


def test_action_quanta_checks_its_text_corpus_before_the_run_folder(
    offline_hub, tmp_path, capsys, monkeypatch
):
    from akira_nb.alignment import aq

    monkeypatch.setattr(aq, "run_aq", _no_training)  # the comparison must not start
    root = tmp_path / "runs"
    argv = ["action_quanta", "--size", "tiny", "--text-corpus", "wikitext-2", "--no-grokking"]
    assert kit_main([*argv, "--quiet", "--output_dir", str(root)]) == 2
    line = _one_error_line(capsys)
    assert "corpus='wikitext-2'" in line and "corpus='offline'" in line, line
    assert _nothing_written(root)


def test_bandformer_checks_the_aq_text_corpus_before_training(offline_hub, no_training, tmp_path):
    from akira_nb.band_transformer import experiment, presets

    plan = presets.study("tiny", arms=["band"], total_steps=2, aq={"text_corpus": "wikitext-2"})
    with pytest.raises(text.CorpusUnavailableError, match="corpus='wikitext-2'"):
        experiment.run_experiment(plan, root=tmp_path / "runs", log=None)
    assert _nothing_written(tmp_path / "runs")


class _Proxy(socketserver.ThreadingTCPServer):
    """An HTTPS proxy that cannot reach anything: it accepts every connection, then answers
    ``CONNECT`` with ``reply`` and hangs up (as a sandbox's egress proxy may)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, reply: bytes):
        self.reply = reply

        class Handler(socketserver.StreamRequestHandler):
            def handle(inner):
                while inner.rfile.readline() not in (b"\r\n", b""):
                    pass
                inner.wfile.write(self.reply)

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture(params=["tunnel then hang up", "403"])
def dead_proxy(request, monkeypatch):
    reply = {
        "tunnel then hang up": b"HTTP/1.1 200 Connection established\r\n\r\n",
        "403": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    }[request.param]
    server = _Proxy(reply)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for var in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setattr(runtime, "_hub_reachable", {})
    yield
    server.shutdown()
    server.server_close()


def test_a_proxy_that_cannot_reach_the_hub_fails_at_once_on_one_line(dead_proxy):
    start = time.perf_counter()
    with pytest.raises(runtime.HubUnreachableError) as info:
        text.load_documents("wikitext-2")
    assert time.perf_counter() - start < 15  # one check, no retries of every file
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("corpus='wikitext-2' needs the Hugging Face Hub")
    assert "but the HTTPS proxy 127.0.0.1:" in msg and "does not reach it" in msg, msg
    assert runtime.hub_answers(2.0) is False


# ----------------------------------------------------------------------------- 4: batch size


def _tiny_cfg(**kw):
    base = dict(arm="band", seq_len=32, total_steps=2, warmup_steps=0, progress=False)
    return bf_train.TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("package", ["band_transformer", "differential_lr"])
def test_a_resume_with_other_settings_is_refused_before_the_corpus_loads(
    package, tmp_path, monkeypatch
):
    """026 and 013 run the resume guard before reading the corpus (minutes for wikitext-103),
    and the refused resume writes nothing."""
    import importlib

    from akira_nb.runs import Run

    presets = importlib.import_module(f"akira_nb.{package}.presets")
    experiment = importlib.import_module(f"akira_nb.{package}.experiment")
    name = "comparison" if package == "band_transformer" else "study"  # their default names
    run = Run.create(presets.EXPERIMENT, name, presets.study("tiny").to_dict(), root=tmp_path)

    def no_load(*a, **k):
        raise AssertionError("the corpus was loaded before the resume was refused")

    monkeypatch.setattr(bf_train, "make_data", no_load)
    with pytest.raises(ValueError, match="resume refused.*seeds"):
        experiment.run_experiment(
            presets.study("tiny", seeds=[5, 6]), resume=True, root=tmp_path, log=None
        )
    assert [p.name for p in run.path.iterdir()] == ["config.json"]


def test_a_batch_larger_than_the_train_split_is_refused_naming_both():
    n = int(bf_train.make_data(_tiny_cfg(batch_size=16)).train.shape[0])
    assert bf_train.make_data(_tiny_cfg(batch_size=n)).train.shape[0] == n  # the edge fits
    with pytest.raises(ValueError) as info:
        bf_train.make_data(_tiny_cfg(batch_size=n + 1))
    msg = str(info.value)
    assert f"batch_size={n + 1}" in msg and f"{n:,} training blocks" in msg, msg


def test_bandformer_cli_refuses_a_batch_larger_than_the_data_before_the_run_folder(
    offline_hub, no_training, tmp_path, capsys
):
    root = tmp_path / "runs"
    argv = ["bandformer", "--size", "tiny", "--batch_size", "100000", "--arms", "band"]
    assert kit_main([*argv, "--total_steps", "2", "--quiet", "--output_dir", str(root)]) == 2
    line = _one_error_line(capsys)
    assert "batch_size=100000" in line and "training blocks" in line, line
    assert _nothing_written(root)


def test_the_train_entry_point_refuses_it_too(offline_hub, no_training, tmp_path, capsys):
    root = tmp_path / "runs"
    argv = ["--batch-size", "100000", "--total-steps", "2", "--warmup-steps", "0"]
    assert bf_train.main([*argv, "--no-progress", "--output-dir", str(root)]) == 2
    assert "batch_size=100000" in _one_error_line(capsys)
    assert _nothing_written(root)


def test_differential_lr_refuses_it_through_the_same_check(offline_hub, no_training, tmp_path):
    from akira_nb.differential_lr import experiment, presets

    plan = presets.study("tiny", batch_size=100000)
    with pytest.raises(ValueError, match=r"batch_size=100000 is more than the [\d,]+ training"):
        experiment.run_experiment(plan, root=tmp_path / "runs", log=None)
    assert _nothing_written(tmp_path / "runs")


# ----------------------------------------------------------------------------- 6: empty lists


@pytest.mark.parametrize("key", ["arms", "seeds", "sweep_seeds", "budgets"])
def test_differential_lr_study_refuses_an_explicit_empty_list(key):
    from akira_nb.differential_lr import presets

    with pytest.raises(ValueError, match=rf"{key}=\[\] "):
        presets.study("tiny", **{key: []})
    plan = presets.study("tiny", **{key: None})  # None: the preset's
    preset = {"arms": list(presets.DEFAULT_ARMS), "seeds": [0, 1, 2], "budgets": [40, 200]}
    assert getattr(plan, key) == preset.get(key, [0]), key  # sweep_seeds: the first seed


# ----------------------------------------------------------------------------- 7: 033 frames


def test_held_out_frames_must_come_after_every_training_frame():
    from akira_nb.spatiotemporal.train import TrainConfig

    # training frames t = 0 .. 60; the evaluation window starts eval_warmup = 8 before eval_start
    TrainConfig(steps=60, eval_start=68.4, eval_warmup=8).validate()
    for bad in (68.0, 30.4, -1.0):
        with pytest.raises(ValueError, match=rf"eval_start={bad!r} .*t = 0 \.\. 60\): pass "):
            TrainConfig(steps=60, eval_start=bad, eval_warmup=8).validate()
    # batched: 3 streams 37 steps apart train on t = 0 .. 74 + 60
    batched = dict(protocol="batched", batch=3, batch_spacing=37.0, steps=60, eval_warmup=8)
    TrainConfig(**batched, eval_start=142.4).validate()
    with pytest.raises(ValueError, match=r"t = 0 \.\. 134\)"):
        TrainConfig(**batched, eval_start=100.4).validate()


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--eval-start", "-1"], "eval_start=-1.0"),
        (["--eval-start", "30"], "eval_start=30.0"),
        (["--steps", "0"], "steps=0"),
    ],
)
def test_spatiotemporal_refuses_trained_held_out_frames_and_zero_steps(
    argv, match, no_training, tmp_path, capsys
):
    root = tmp_path / "runs"
    argv = ["spatiotemporal", "--size", "tiny", *argv, "--quiet", "--output_dir", str(root)]
    assert kit_main(argv) == 2
    assert match in _one_error_line(capsys)
    assert _nothing_written(root)


def test_spatiotemporal_study_refuses_a_sweep_of_zero_steps():
    from akira_nb.spatiotemporal import presets

    with pytest.raises(ValueError, match="sweep_steps=0"):
        presets.study("tiny", sweep_steps=0)


# ----------------------------------------------------------------------------- 8: AQ rules


@pytest.mark.parametrize(
    "method, value, match",
    [
        ("statistical", -5.0, r"threshold_value=-5.0 .*statistical rule \(k of mean \+ k std"),
        ("statistical", 0.0, "threshold_value=0.0"),
        ("percentile", 150.0, r"threshold_value=150.0 .*\[0.0, 100.0\]"),
        ("fixed", 2.0, r"threshold_value=2.0 .*\[-1.0, 1.0\]"),
    ],
)
def test_aq_threshold_values_outside_their_rules_range_are_refused(method, value, match):
    from akira_nb.action_quanta import presets

    with pytest.raises(ValueError, match=match):
        presets.study("tiny", threshold_method=method, threshold_value=value)


def test_aq_threshold_values_inside_their_range_are_kept():
    from akira_nb.action_quanta import presets
    from akira_nb.alignment import thresholds

    for method, value in (("statistical", 0.5), ("percentile", 0.0), ("fixed", -1.0)):
        p = presets.study("tiny", threshold_method=method, threshold_value=value)
        assert p.aq.rule_value == value
    assert thresholds.check_rule("fixed", 41.5) == ("fixed", 41.5)  # any scale outside 000
    with pytest.raises(ValueError, match=r"^value=-1.0 "):  # the generic name by default
        thresholds.check_rule("statistical", -1.0)


@pytest.mark.parametrize(
    "method, value", [("statistical", "-5"), ("percentile", "150"), ("fixed", "2")]
)
def test_action_quanta_names_the_threshold_flag(
    method, value, offline_hub, tmp_path, capsys, monkeypatch
):
    from akira_nb.alignment import aq

    monkeypatch.setattr(aq, "run_aq", _no_training)
    root = tmp_path / "runs"
    argv = ["--size", "tiny", "--threshold-method", method, "--threshold-value", value]
    assert kit_main(["action_quanta", *argv, "--output_dir", str(root)]) == 2
    assert f"threshold_value={float(value)!r}" in _one_error_line(capsys)
    assert _nothing_written(root)


# ----------------------------------------------------------------------------- 9: --help


def test_every_override_example_in_the_train_help_parses_and_validates():
    parser = bf_train.parser()
    helptext = " ".join(parser.format_help().split())
    examples = re.findall(r"--override '?([a-z_]+=[^'\s;]+)'?", helptext)
    assert len(examples) >= 2, helptext
    for example in examples:
        args = parser.parse_args(["--override", example])
        cfg = bf_train.config_from_args(args)  # validated
        key, value = bf_train._parse_override(example)
        assert cfg.model_overrides[key] == value and not isinstance(value, str)


def test_an_override_that_is_an_expression_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"'band_lrs=\(1e-4,\)\*7'.*not a Python literal"):
        bf_train._parse_override("band_lrs=(1e-4,)*7")
    assert bf_train._parse_override("layout=reference") == ("layout", "reference")
