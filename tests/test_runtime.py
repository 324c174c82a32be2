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
