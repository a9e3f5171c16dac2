"""train/cpu.py: --bf16 is checked against the CPU's flags."""
from train.cpu import native_bf16, warn_if_bf16_is_slow

INTEL = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16\n"
AMD = "processor\t: 0\nflags\t\t: fpu sse avx2 fma\n"


def test_native_bf16_reads_the_flags(tmp_path):
    (tmp_path / "intel").write_text(INTEL)
    (tmp_path / "amd").write_text(AMD)
    (tmp_path / "arm").write_text("processor\t: 0\nFeatures\t: fp asimd\n")
    assert native_bf16(tmp_path / "intel") is True
    assert native_bf16(tmp_path / "amd") is False
    assert native_bf16(tmp_path / "arm") is None  # no x86 flags line: unknown
    assert native_bf16(tmp_path / "missing") is None


def test_warning_only_where_bf16_is_emulated(tmp_path, capsys):
    (tmp_path / "intel").write_text(INTEL)
    (tmp_path / "amd").write_text(AMD)
    assert not warn_if_bf16_is_slow("train world-model", tmp_path / "intel")
    assert capsys.readouterr().err == ""
    assert warn_if_bf16_is_slow("train world-model", tmp_path / "amd")
    err = capsys.readouterr().err
    assert err.startswith("train world-model: warning: --bf16") and "drop --bf16" in err
