"""CLI errors for files the user names: a clear message and exit 1, never 'internal error'."""

from engine.cli import main


def test_missing_input_file_names_the_file(capsys, tmp_path):
    missing = tmp_path / "nope.csv"
    assert main(["cardholders", "check", str(missing)]) == 1
    assert capsys.readouterr().err == f"onecard: {missing}: No such file or directory\n"


def test_folder_instead_of_file_is_refused(capsys, tmp_path):
    assert main(["cardholders", "check", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"onecard: {tmp_path}: Is a directory\n"


def test_demo_refuses_an_unwritable_out_folder_before_any_work(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["demo", "--out", str(blocker / "out")]) == 2
    assert capsys.readouterr().err == f"onecard: --out {blocker / 'out'}: cannot write there (Not a directory)\n"
