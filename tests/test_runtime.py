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
