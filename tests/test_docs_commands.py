"""Every ``tinygrad-rnn …`` and ``python -m tinygrad_rnn …`` command the docs show parses with the
real command-line parser, so the docs cannot drift from the flags.

Commands are collected from README.md and docs/*.md (fenced and indented code blocks, with or
without a ``$ `` prompt, and inline code spans) and from what ``make run`` prints and runs. Each
is split as a shell would split it, handed to the parser, and — for ``train`` — to the function
that turns the arguments into a run configuration (which checks the task and data set names).
"""

import contextlib
import glob
import io
import os
import re
import shlex

import pytest
from markdown_code import markdown_code

from tinygrad_rnn.cli import CLIError, build_parser
from tinygrad_rnn.cli.tasks import make_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
# How a command to our CLI starts, as typed: the script on PATH, the one in .venv, the module.
PROGRAMS = (
    ("tinygrad-rnn",),
    (".venv/bin/tinygrad-rnn",),
    ("python", "-m", "tinygrad_rnn"),
    ("python3", "-m", "tinygrad_rnn"),
    (".venv/bin/python", "-m", "tinygrad_rnn"),
)
STARTS = tuple(" ".join(p) + " " for p in PROGRAMS)


def commands_in_markdown(text):
    """(line number, command, kind) for each command in code blocks ("block") and inline code
    spans ("inline": in prose a span may name a command without its arguments)."""
    found = []
    for number, code, kind in markdown_code(text):
        command = code[2:] if kind == "block" and code.startswith("$ ") else code
        if command.startswith(STARTS):
            found.append((number, command, kind))
    return found


def commands_in_makefile(path):
    """Commands that ``make run`` runs or prints (Makefile variables substituted)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    variables = dict(re.findall(r"^([A-Z_]+)\s*:=\s*(.*)$", text, flags=re.M))
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        command = line.strip()
        if command.startswith("@echo"):  # a command printed for the user
            command = " ".join(shlex.split(command[len("@echo") :])).strip()
        command = re.sub(r"^(\w+=\S+\s+)+", "", command)  # VAR=value prefixes
        for _ in range(5):  # $(PY) is $(VENV)/bin/python, …
            command = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), command)
        if command.startswith(STARTS):
            found.append((number, command, "block"))
    return found


def all_commands():
    cases = []
    for path in DOCS:
        with open(path, encoding="utf-8") as f:
            cases += [(os.path.relpath(path, ROOT), *found) for found in commands_in_markdown(f.read())]
    cases += [("Makefile", *found) for found in commands_in_makefile(os.path.join(ROOT, "Makefile"))]
    return cases


def check_command(command, name_only_ok=False):
    """Parse ``command`` as our CLI would; raise AssertionError with the parser's message if it fails.
    ``name_only_ok``: a prose mention such as `tinygrad-rnn train` may leave out required arguments."""
    argv = shlex.split(command, comments=True)
    for program in PROGRAMS:
        if tuple(argv[: len(program)]) == program:
            argv = argv[len(program) :]
            break
    else:
        raise AssertionError(f"not a tinygrad-rnn command: {command}")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code == 0:  # --help
            return None
        if name_only_ok and "the following arguments are required" in err.getvalue():
            return None
        raise AssertionError(f"the CLI refuses {command!r}: {err.getvalue().strip()}") from None
    if args.command == "train":
        make_config(args)  # checks the task and data set names and value ranges
    return args


CASES = all_commands()


def test_the_docs_show_commands():
    """The collector finds the commands it must check (so the test below cannot pass empty)."""
    places = {where for where, _, _, _ in CASES}
    assert {"README.md", "docs/results.md", "docs/bptt.md", "Makefile"} <= places, places
    readme = [c for where, _, c, _ in CASES if where == "README.md"]
    assert any(c.startswith("tinygrad-rnn train classify") for c in readme), readme
    assert any(c.startswith("tinygrad-rnn bptt experiment") for c in readme), readme
    makefile = [c for where, _, c, _ in CASES if where == "Makefile"]
    assert any("train classify" in c for c in makefile) and any(
        "evaluate runs/make-run" in c for c in makefile
    )


@pytest.mark.parametrize("where, line, command, kind", CASES, ids=[f"{w}:{n}" for w, n, _, _ in CASES])
def test_command_parses(where, line, command, kind):
    check_command(command, name_only_ok=kind == "inline")


@pytest.mark.parametrize(
    "command",
    [
        "tinygrad-rnn train classify --data reviews --bogus-flag",  # no such option
        "tinygrad-rnn train classify --data peoples-daily",  # data set of another task
        "tinygrad-rnn bptt flow --length ten",  # not a number
        "tinygrad-rnn bptt wobble",  # no such tool
        "python -m tinygrad_rnn evaluate",  # DIR missing
    ],
)
def test_a_wrong_command_is_caught(command):
    with pytest.raises((AssertionError, CLIError)):
        check_command(command)


# --- every documented predict/evaluate reads a directory a documented train writes ---------------
PLACEHOLDER = re.compile(r"^[A-Z_]+$")  # `predict DIR TEXT` in prose names no directory


def train_directories(cases):
    """{run directory: command} for every documented ``train``: its --out, or the default name the
    CLI itself computes (:func:`tinygrad_rnn.runs.default_run_directory`); nothing is trained."""
    from tinygrad_rnn.runs import default_run_directory

    made = {}
    for _, _, command, kind in cases:
        args = check_command(command, name_only_ok=kind == "inline")
        if args is not None and args.command == "train":
            made[os.path.normpath(args.out or default_run_directory(make_config(args)))] = command
    return made


def read_directories(cases):
    """(where, line, directory) for every documented ``predict DIR …`` and ``evaluate DIR``."""
    found = []
    for where, line, command, kind in cases:
        args = check_command(command, name_only_ok=kind == "inline")
        if args is not None and args.command in ("predict", "evaluate") and not PLACEHOLDER.match(args.dir):
            found.append((where, line, os.path.normpath(args.dir)))
    return found


def test_every_documented_predict_or_evaluate_reads_a_directory_a_documented_train_writes():
    made = train_directories(CASES)
    reads = read_directories(CASES)
    assert len(reads) >= 5 and "runs/classify-reviews" in made, (reads, made)  # the collector works
    shipped = {
        d for _, _, d in reads if os.path.isfile(os.path.join(ROOT, d, "config.json"))
    }  # models/reviews/*
    missing = [f"{where}:{line} reads {d}" for where, line, d in reads if d not in made and d not in shipped]
    assert not missing, f"no documented train command writes these: {missing}; written: {sorted(made)}"


def test_documented_train_commands_write_distinct_directories():
    """Two documented runs of different settings in one directory would replace each other (now:
    the second would be refused). The same run named twice (a prose mention) is fine."""
    from tinygrad_rnn.runs import default_run_directory

    seen = {}
    for where, line, command, kind in CASES:
        args = check_command(command, name_only_ok=kind == "inline")
        if args is None or args.command != "train" or args.resume:
            continue
        config = make_config(args)
        out = os.path.normpath(args.out or default_run_directory(config))
        first = seen.setdefault(out, (config, command))
        assert first[0] == config, f"{where}:{line}: {command!r} and {first[1]!r} both write {out}"


def test_the_check_catches_a_directory_no_command_writes():
    cases = [
        ("x.md", 1, "tinygrad-rnn train seq2seq --data numerals --feed-context", "block"),
        ("x.md", 2, "tinygrad-rnn predict runs/seq2seq-numerals 三百", "block"),
    ]
    made = train_directories(cases)
    assert made == {"runs/seq2seq-numerals-feed-context": cases[0][2]}
    assert [d for _, _, d in read_directories(cases) if d not in made] == ["runs/seq2seq-numerals"]
