"""The README's set-up commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_COMMAND = 'pip install ".[all]" && python -m pytest -q'
MAIN_COMMAND = 'pip install ".[train,plot]" && nnip-scaling study --quick --out study/'


def test_readme_and_ci_agree():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert TEST_COMMAND in readme and MAIN_COMMAND in readme
    assert TEST_COMMAND in ci.splitlines()
    assert "pip install torch==2.13.0" in ci


def test_readme_quickstart_runs():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quickstart", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert len(block.strip().splitlines()) <= 16  # the README promises a ~15-line quickstart
    exec(compile(block, "README-quickstart", "exec"), {})
