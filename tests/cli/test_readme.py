"""The README's two commands are the contract with a newcomer and with CI."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)


def test_readme_has_exactly_two_commands():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    assert commands[0].endswith("kerastune-ft demo")
    assert commands[1].endswith("pytest")


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


@pytest.mark.slow
@pytest.mark.heavy(30)  # seconds, about: the longest start first
def test_readme_notebook_example_runs(shared_dir, monkeypatch, capsys, tmp_path):
    """The README's Python example, on real flowers and offline ImageNet weights.

    Only the data path (56 validation photos per class, linked), the image
    size (96 px) and the epoch count change, to stay quick. 56 per class
    leaves more than 32 per class to train on after `val_split=0.2`, so
    `fine_tune` keeps the README's gradient recipe (not the few-shot one).
    """
    flowers = tmp_path / "flowers"
    for folder in sorted((shared_dir / "datasets/flowers/val").iterdir()):
        (flowers / folder.name).mkdir(parents=True)
        for photo in sorted(folder.iterdir())[:56]:
            (flowers / folder.name / photo.name).symlink_to(photo)
    text = (ROOT / "README.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)\n```", text, flags=re.S))
    assert '"flowers/"' in code and "epochs=10" in code
    code = code.replace('"flowers/"', repr(str(flowers)))
    code = code.replace("epochs=10", "epochs=2")
    assert code.count("160, 160") == 2  # image_size and input_shape
    code = code.replace("160, 160", "96, 96")
    monkeypatch.setenv(
        "KFT_WEIGHTS_DIR", str(shared_dir / "weights/keras_applications")
    )
    monkeypatch.chdir(tmp_path)  # report.html and flowers.keras land here
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "unfreeze top 20" in out and "best epoch" in out
    assert (tmp_path / "report.html").is_file() and (
        tmp_path / "flowers.keras"
    ).is_file()
