import sys
import types

import pytest
import torch

from akira_nb import runtime


def test_size_from_env(monkeypatch):
    monkeypatch.setenv("AKIRA_SIZE", "tiny")
    assert runtime.get_size() == "tiny"
    monkeypatch.setenv("AKIRA_SIZE", "huge")
    with pytest.raises(ValueError, match="AKIRA_SIZE"):
        runtime.get_size()
    monkeypatch.delenv("AKIRA_SIZE")
    assert runtime.get_size(default="t4") == "t4"


def test_pick_needs_every_size():
    assert runtime.pick("t4", tiny=1, t4=2, a100=3) == 2
    with pytest.raises(ValueError, match="a100"):
        runtime.pick("tiny", tiny=1, t4=2)
    with pytest.raises(ValueError, match="size"):
        runtime.pick("xl", tiny=1, t4=2, a100=3)


def test_seed_everything_makes_torch_repeatable():
    runtime.seed_everything(7)
    a = torch.randn(3)
    runtime.seed_everything(7)
    assert torch.equal(a, torch.randn(3))
    with pytest.raises(ValueError, match="seed"):
        runtime.seed_everything(-1)


def test_cpu_device_has_no_amp():
    assert runtime.get_device("cpu").type == "cpu"
    assert runtime.amp_dtype("cpu") is None
    assert not runtime.grad_scaler("cpu").is_enabled()
    with runtime.autocast("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error path")
def test_asking_for_cuda_without_gpu_raises():
    with pytest.raises(ValueError, match="device"):
        runtime.get_device("cuda")


def test_check_range_names_the_parameter():
    assert runtime.check_range("x", 0.5, 0, 1) == 0.5
    with pytest.raises(ValueError, match=r"threshold=1\.5.*\[0, 1\]"):
        runtime.check_range("threshold", 1.5, 0, 1)
    with pytest.raises(ValueError, match=r"decay_rate=1.*\(0, 1\)"):
        runtime.check_range("decay_rate", 1, 0, 1, low_open=True, high_open=True)


def test_check_range_and_check_int_refuse_wrong_types():
    for bad in ("0.5", None, True):
        with pytest.raises(ValueError, match="x="):
            runtime.check_range("x", bad, 0, 1)
    assert runtime.check_int("n", 3, low=1) == 3
    for bad in (1.5, "3", None, True, 0):
        with pytest.raises(ValueError, match="n="):
            runtime.check_int("n", bad, low=1)


def test_environment_info_records_versions():
    info = runtime.environment_info("cpu")
    assert info["torch"] == torch.__version__ and info["device"] == "cpu"


@pytest.mark.parametrize("bad", ["tpu", "gpu", "cuda:x", "", None, 3])
def test_bad_device_names_raise_value_error(bad):
    with pytest.raises(ValueError, match="device="):
        runtime.get_device(bad) if bad is not None else runtime.check_device("device", bad)


def test_check_device_takes_a_torch_device_and_checks_cuda_on_this_machine():
    assert runtime.check_device("device", torch.device("cpu")) == "cpu"
    assert runtime.check_device("device", "auto") == "auto"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda'.*no CUDA device"):
            runtime.check_device("device", torch.device("cuda"))


def test_check_seeds():
    assert runtime.check_seeds("seeds", (0, 2)) == [0, 2]
    for bad, what in (
        ([-1], r"seeds\[0\]=-1"),
        ([], "at least one"),
        ([1, 1], "repeats"),
        ("12", "list"),
        ([0.5], r"seeds\[0\]"),
    ):
        with pytest.raises(ValueError, match=what):
            runtime.check_seeds("seeds", bad)


def test_size_from_flag_then_env_then_the_seeds_protocol(monkeypatch):
    monkeypatch.delenv("AKIRA_SIZE", raising=False)
    assert runtime.size_from(None) is None
    assert runtime.size_from("t4") == "t4"
    monkeypatch.setenv("AKIRA_SIZE", "tiny")
    assert runtime.size_from(None) == "tiny"
    assert runtime.size_from("a100") == "a100"
    with pytest.raises(ValueError, match="size='xl'"):
        runtime.size_from("xl")


def test_cpu_threads_sets_and_restores():
    old = torch.get_num_threads()
    target = 1 if old != 1 else 2
    with runtime.cpu_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == old
    for keep in (None, 0):
        with runtime.cpu_threads(keep):
            assert torch.get_num_threads() == old
    with pytest.raises(ValueError, match="cpu_threads=-1"):
        with runtime.cpu_threads(-1):
            pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU warning")
def test_warn_if_no_gpu_warns_only_at_gpu_sizes(capsys):
    assert runtime.warn_if_no_gpu("tiny") is False
    assert capsys.readouterr().err == ""
    assert runtime.warn_if_no_gpu("t4") is True
    err = capsys.readouterr().err
    assert "WARNING" in err and "Change runtime type" in err and "AKIRA_SIZE=tiny" in err


def test_runtime_and_runs_import_without_torch():
    import subprocess
    import sys

    code = "import sys, akira_nb.runtime, akira_nb.runs; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- the no-GPU warning


def test_every_sub_command_has_its_cpu_cost_at_every_size():
    from akira_nb.__main__ import EXPERIMENTS

    assert set(runtime.CPU_COST) == set(EXPERIMENTS)
    for name, costs in runtime.CPU_COST.items():
        assert set(costs) == {None, *runtime.SIZES}, name
        assert all(" on a CPU" in costs[s] for s in (None, "t4", "a100")), name
    with pytest.raises(ValueError, match="experiment='nope'"):
        runtime.cpu_cost("nope", None)


def test_warning_names_the_run_its_cpu_time_and_the_tiny_size(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.warn_if_no_gpu(None, "grokking") is True
    err = " ".join(capsys.readouterr().err.split())
    assert "no --size or AKIRA_SIZE was given, so this runs the seed's own protocol" in err
    assert "5 models x 30,000 full-batch epochs: about 1-2 hours on a CPU" in err
    assert "--size tiny" in err and "p = 23, 5 models, 1,000 epochs" in err
    assert runtime.warn_if_no_gpu("a100", ["bandformer", "differential_lr"]) is True
    err = " ".join(capsys.readouterr().err.split())
    assert "size 'a100' is a GPU preset; this runs it on the CPU" in err
    assert "bandformer: " in err
    assert "differential_lr: " in err and "two weeks or more on a CPU" in err
    assert runtime.warn_if_no_gpu("tiny", "grokking") is False
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.warn_if_no_gpu(None, "grokking") is False
    with pytest.raises(ValueError, match="experiment='nope'"):
        runtime.warn_if_no_gpu(None, "nope")


# ----------------------------------------------------------------------------- the Hub check


@pytest.fixture
def hub(monkeypatch):
    """The Hub check with the socket connect replaced: ``hub.reachable`` sets its answer,
    ``hub.calls`` counts the connects; a fresh per-process cache, no proxy, not offline."""
    state = type("Hub", (), {"reachable": False, "calls": 0})()

    def connect(host, port, timeout):
        state.calls += 1
        assert (host, port) == ("huggingface.co", 443) and timeout <= 5
        return state.reachable

    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(runtime, "_can_connect", connect)
    monkeypatch.setattr(runtime, "_hub_reachable", {})
    return state


def test_require_hub_fails_at_once_on_one_line_naming_the_remedy(hub):
    for _ in range(2):
        with pytest.raises(runtime.HubUnreachableError) as info:
            runtime.require_hub("corpus='wikitext-2'")
    msg = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in msg
    assert msg.startswith("corpus='wikitext-2' needs the Hugging Face Hub")
    assert "huggingface.co:443 cannot be reached" in msg
    assert "--offline" in msg and "--size tiny" in msg and "HF_HUB_OFFLINE=1" in msg
    assert hub.calls == 1  # checked once per process


def test_require_hub_passes_when_reachable_and_checks_nothing_offline(hub, monkeypatch):
    hub.reachable = True
    runtime.require_hub("the GPT-2 tokenizer")
    runtime.require_hub("model 'gpt2'")
    assert hub.calls == 1
    monkeypatch.setattr(runtime, "_hub_reachable", {})
    hub.reachable = False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the libraries read the local cache only
    runtime.require_hub("corpus='wikitext-2'")
    assert hub.calls == 1


def test_the_hub_is_reached_through_the_proxy_or_endpoint(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    assert runtime.hub_address() == ("huggingface.co", 443)
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example:8443")
    assert runtime.hub_address() == ("hf-mirror.example", 8443)
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert runtime.hub_address() == ("proxy.example", 3128)


def test_hub_loaders_fail_at_once_when_the_hub_is_unreachable(hub):
    import time

    from akira_nb import text
    from akira_nb.alignment import models
    from akira_nb.bandformer import data as band_data

    calls = {
        "model 'gpt2-medium'": lambda: models.load_model("gpt2-medium", device="cpu"),
        "corpus='wikitext-103'": lambda: text.load_documents("wikitext-103"),
        "the GPT-2 tokenizer": text.gpt2_tokenizer,
        "dataset='tinystories'": lambda: band_data._tinystories(64, None),
    }
    for what, call in calls.items():
        start = time.perf_counter()
        with pytest.raises(runtime.HubUnreachableError, match="--offline") as info:
            call()
        assert time.perf_counter() - start < 1.0
        assert str(info.value).startswith(f"{what} needs the Hugging Face Hub")
    assert text.load_documents("offline")  # the offline corpus needs no Hub
    assert hub.calls == 1


def test_resume_default_reads_akira_resume_else_resumes_above_tiny(monkeypatch):
    monkeypatch.delenv("AKIRA_RESUME", raising=False)
    assert runtime.resume_default("tiny") is False and runtime.resume_default("t4") is True
    monkeypatch.setenv("AKIRA_RESUME", "1")
    assert runtime.resume_default("tiny") is True
    monkeypatch.setenv("AKIRA_RESUME", "no")
    assert runtime.resume_default("a100") is False
    monkeypatch.setenv("AKIRA_RESUME", "maybe")
    with pytest.raises(ValueError, match="AKIRA_RESUME='maybe'"):
        runtime.resume_default("tiny")


def test_check_distinct_returns_the_list_and_names_a_repeat():
    assert runtime.check_distinct("arms", ("band", "baseline")) == ["band", "baseline"]
    assert runtime.check_distinct("budgets", []) == []
    with pytest.raises(ValueError, match=r"budgets=\[200, 500, 200\] repeats 200"):
        runtime.check_distinct("budgets", (200, 500, 200))


def test_parse_floats_reads_commas_and_spaces():
    assert runtime.parse_floats("1e-5,3e-5 0.1") == [1e-5, 3e-5, 0.1]
    assert runtime.parse_floats(" 0.316 , 1,3.16 ") == [0.316, 1.0, 3.16]
    assert runtime.parse_floats("") == []
    with pytest.raises(ValueError):
        runtime.parse_floats("1,x")


def test_training_tokens_is_steps_by_batch_by_length():
    assert runtime.training_tokens(5000, 16, 256) == 20_480_000
    assert runtime.training_tokens(0, 16, 32) == 0
    for bad in (dict(steps=-1), dict(batch_size=2.5), dict(seq_len=True)):
        args = dict(steps=10, batch_size=16, seq_len=32) | bad
        with pytest.raises(ValueError, match=f"{next(iter(bad))}="):
            runtime.training_tokens(**args)


def test_in_ipython_sees_a_shell_only_when_there_is_one(monkeypatch):
    assert runtime.in_ipython() is False  # pytest is a plain Python process
    monkeypatch.setitem(sys.modules, "IPython", None)  # not installed: import fails
    assert runtime.in_ipython() is False
    shell = types.ModuleType("IPython")
    shell.get_ipython = lambda: object()
    monkeypatch.setitem(sys.modules, "IPython", shell)
    assert runtime.in_ipython() is True
