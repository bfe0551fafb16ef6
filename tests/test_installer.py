"""The installer's own behaviour, without installing: a line per step, a failure that shows the step, the log's last
lines and its path; a lock older than pyproject.toml refused; run.sh's arguments read the way the server reads them."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from lollms_server.installing import locks
from lollms_server.installing.steps import InstallLog, StepFailed, duration

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import install_core  # noqa: E402


def test_a_step_is_one_line_with_what_it_did_and_how_long(tmp_path: Path) -> None:
    out = io.StringIO()
    with InstallLog(tmp_path / "install.log", out) as log:
        with log.step("packages") as step:
            log.run([sys.executable, "-c", "print('Collecting something noisy')"])
            step.done("installed")
    assert out.getvalue().startswith("  packages") and out.getvalue().count("\n") == 1
    assert "installed (" in out.getvalue() and "Collecting" not in out.getvalue()
    assert "Collecting something noisy" in (tmp_path / "install.log").read_text()


def test_a_failed_step_shows_the_step_the_last_lines_and_the_log(tmp_path: Path) -> None:
    out = io.StringIO()
    noisy = "import sys\nfor n in range(100): print(f'line {n}')\nsys.exit(3)"
    with InstallLog(tmp_path / "install.log", out) as log, pytest.raises(SystemExit) as stopped:
        with log.step("llama.cpp") as step:
            step.note("compiling from source")
            log.run([sys.executable, "-c", noisy])
    shown = out.getvalue()
    assert stopped.value.code == 1
    assert "compiling from source ... FAILED after" in shown
    assert "llama.cpp failed: `python -c" in shown and "exited with code 3" in shown
    assert "line 99" in shown and "line 10\n" not in shown  # the last lines only
    assert f"The whole log: {tmp_path / 'install.log'}" in shown


def test_a_program_that_cannot_start_is_a_failed_step(tmp_path: Path) -> None:
    with InstallLog(tmp_path / "install.log", io.StringIO()) as log, pytest.raises(StepFailed, match="could not start"):
        log.run([str(tmp_path / "no-such-program")])


def test_durations_read_as_people_say_them() -> None:
    assert [duration(s) for s in (0.04, 9.94, 12.4, 59.4, 61, 3605)] == [
        "0.0 s",
        "9.9 s",
        "12 s",
        "59 s",
        "1 min 01 s",
        "60 min 05 s",
    ]


def test_a_lock_older_than_pyproject_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fail closed: a lock resolved from other declarations would install a server missing a dependency."""
    assert install_core.check_locks("run").startswith("locks/run.txt, hash-checked")
    stale = tmp_path / "run.txt"
    stale.write_text(locks.path_of("run").read_text().replace(locks.fingerprint(), "0" * 64))
    monkeypatch.setattr(locks, "LOCKS", tmp_path)
    with pytest.raises(StepFailed, match=r"--relock.*--latest"):
        install_core.check_locks("run")
    with pytest.raises(StepFailed, match="missing or older"):
        install_core.check_locks("tests")  # no such file there


def test_the_pins_of_a_lock_read_back_with_their_markers_and_hashes() -> None:
    pins = locks.pins("run")
    assert len({pin.name for pin in pins}) > 50
    numpy = [pin for pin in pins if pin.name == "numpy"]
    assert numpy and all(pin.hashes and pin.version for pin in numpy)
    assert all(pin.line().startswith(f"numpy=={pin.version}") and "--hash=sha256:" in pin.line() for pin in numpy)


@pytest.mark.parametrize(
    ("arguments", "serves", "config"),
    [
        ([], True, None),
        (["--port", "9700"], True, None),
        (["--config", "wizard"], True, "wizard"),  # a folder named like a command
        (["--config=/etc/lollms", "serve"], True, "/etc/lollms"),
        (["wizard"], False, None),  # the wizard must not find a configuration written for it
        (["--config", "conf", "check-config"], False, "conf"),
    ],
)
def test_run_sh_arguments_are_read_as_the_server_reads_them(
    arguments: list[str], serves: bool, config: str | None
) -> None:
    assert install_core.serves(arguments) is serves
    assert install_core.config_argument(arguments) == config


def test_the_profiles_of_extras() -> None:
    assert locks.profile_for(["llamacpp", "speech"]) == "run"
    assert locks.profile_for(["speech", "llamacpp", "diffusers", "dev"]) == "tests"
    assert locks.profile_for(["llamacpp"]) is None  # pinned by all.txt, not hash-checked
