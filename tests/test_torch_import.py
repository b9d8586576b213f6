"""torch stays out of kexue's runtime dependencies: ``import kexue`` (and every
area) works with torch hidden, and ``import kexue.torch`` then says how to
install it."""
from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


HIDE_TORCH = """
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("No module named 'torch' (hidden by the test)")
            return None
    sys.meta_path.insert(0, _NoTorch())
"""


def test_import_kexue_without_torch():
    r = _run(HIDE_TORCH + """
    import numpy as np, kexue
    import kexue.reference
    assert "torch" not in sys.modules
    p = np.zeros(3); kexue.optim.SGD([p], lr=0.1).step([np.ones(3)])
    assert p.tolist() == [-0.1, -0.1, -0.1]
    try:
        import kexue.torch
    except ImportError as e:
        print("IMPORT-ERROR:", e)
    else:
        raise SystemExit("kexue.torch imported without torch")
    """)
    assert r.returncode == 0, r.stderr
    assert "IMPORT-ERROR:" in r.stdout and "pip install torch" in r.stdout, r.stdout


def test_import_kexue_does_not_import_torch():
    r = _run("""
    import sys, kexue
    print("torch" in sys.modules)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_docstring_examples_of_kexue_torch():
    """The examples in kexue.torch's docstrings run (torch installed)."""
    import doctest
    import importlib

    import pytest

    pytest.importorskip("torch")
    pytest.importorskip("torchcrf")
    for name in ("kexue.torch", "kexue.torch._crf", "kexue.torch._spans", "kexue.torch._attention",
                 "kexue.torch.optim"):
        module = importlib.import_module(name)
        runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
        for t in doctest.DocTestFinder().find(module):
            runner.run(t)
        assert runner.failures == 0, f"{runner.failures} docstring example(s) of {name} failed"
