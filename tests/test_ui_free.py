"""The library must stay UI-free: importing it (and all its modules) never pulls in streamlit."""

import subprocess
import sys


def test_import_cnnviz_leaves_streamlit_out():
    code = (
        "import sys, pkgutil, importlib, cnnviz\n"
        "for m in pkgutil.walk_packages(cnnviz.__path__, 'cnnviz.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(k for k in sys.modules if k == 'streamlit' or k.startswith('streamlit.'))\n"
        "print(bad)\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
