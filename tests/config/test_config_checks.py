"""Python checks named in services.yaml are imported by check-config, serve and reload."""

from __future__ import annotations

import pytest

from exporter.cli import main
from exporter.config import ConfigError, import_checks, load_config

CHECKS = (
    "async def ready():\n"
    "    return {'success': True}\n"
    "class Probe:\n"
    "    @staticmethod\n"
    "    def sync():\n"
    "        return {'success': True}\n"
    "NOT_CALLABLE = 5\n"
)


@pytest.fixture
def checks_module(tmp_path, monkeypatch):
    (tmp_path / "usdcop_config_checks.py").write_text(CHECKS)
    (tmp_path / "usdcop_config_broken.py").write_text("raise RuntimeError('no database')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "usdcop_config_checks"


def services_file(tmp_path, check: str):
    path = tmp_path / "services.yaml"
    path.write_text("services:\n"
                    "  - name: api\n"
                    "    url: http://127.0.0.1:1/health\n"
                    "  - name: model\n"
                    "    type: python\n"
                    f"    check: '{check}'\n")
    return path


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ("no.such:fn",
         "check 'no.such:fn': cannot import no.such: ModuleNotFoundError: No module named 'no'"),
        ("usdcop_config_checks:missing", "check 'usdcop_config_checks:missing': "
         "usdcop_config_checks has no missing"),
        ("usdcop_config_checks:NOT_CALLABLE", "check 'usdcop_config_checks:NOT_CALLABLE': "
         "usdcop_config_checks:NOT_CALLABLE is not callable (it is int)"),
        ("usdcop_config_broken:ready", "check 'usdcop_config_broken:ready': cannot import "
         "usdcop_config_broken: RuntimeError: no database"),
    ],
)
def test_a_check_that_cannot_be_used_names_file_line_service_and_field(
        tmp_path, checks_module, check, message):
    path = services_file(tmp_path, check)
    config = load_config(path)  # loading alone never imports user code
    with pytest.raises(ConfigError) as info:
        import_checks(config)
    assert (info.value.file, info.value.line, info.value.service, info.value.field) == (
        str(path), 4, "model", "check")
    assert str(info.value) == f"{path}:4: service 'model': field 'check': {message}"


def test_importable_checks_pass(tmp_path, checks_module):
    for check in ("usdcop_config_checks:ready", "usdcop_config_checks:Probe.sync"):
        import_checks(load_config(services_file(tmp_path, check)))


def test_check_config_exits_1_naming_the_check(tmp_path, checks_module, capsys):
    path = services_file(tmp_path, "no.such:fn")
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:4: service 'model': field 'check': check 'no.such:fn': cannot import" in err
    assert "Traceback" not in err
    path = services_file(tmp_path, "usdcop_config_checks:NOT_CALLABLE")
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:4: service 'model': field 'check':" in err and "is not callable" in err
    assert main(["check-config", str(services_file(tmp_path, "usdcop_config_checks:ready"))]) == 0
