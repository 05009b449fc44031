"""Running the command line in-process, for the CLI tests: one place for the two helpers they share."""

from tinygrad_rnn.cli import main


def run(capsys, *argv):
    """(exit status, stdout, stderr) of ``tinygrad-rnn argv``."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code, err, *needles):
    """The command failed with exit status 2 and said why in one ``error:`` line, no traceback."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
