"""The PyTorch cross-check scripts in docs/crosscheck/ answer ``--help`` at once and refuse a wrong
command without training (``torch_attention.py --help`` used to start a 20-minute training), and
every command the docs show for them still parses.

Commands are collected from README.md and docs/*.md (code spans and fenced blocks), the Makefile,
examples/, notebooks/ and each script's own docstring; ``last|mean`` stands for each alternative
in turn, ``[...]`` parts are tried all present and all left out, and metavariables (``SEED``,
``N``...) get a small value. They are parsed by the script's own parser, stopped right after
``parse_args`` (nothing is loaded or trained), one subprocess per script. PyTorch is not a
dependency: without it the module is skipped.
"""

import ast
import functools
import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
from markdown_code import markdown_code

pytest.importorskip("torch", reason="the cross-check scripts need PyTorch (not a dependency)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "docs", "crosscheck", "*.py")))
TIMEOUT = 60
UNKNOWN = "--no-such-option"
# Values for the metavariables of the usage lines.
METAVARS = {"S": "0", "SEED": "0", "N": "2", "T": "5", "B": "1", "STEPS": "3", "P": "0.2"}
# What a spelling the docs use must still mean, and what must still be refused.
MEANS = {
    "torch_same_init.py": [
        (["400"], {"steps": 400}),
        ([], {"steps": 300}),
        (["ten"], None),
        (["1", "2"], None),
    ],
    "torch_reviews.py": [
        (["mean", "0", "--cell", "lstm"], {"pooling": "mean", "seed": 0, "cell": "lstm"}),
        (["--cell", "gru", "last", "3"], {"pooling": "last", "seed": 3, "cell": "gru"}),
        (["last", "0"], {"pooling": "last", "seed": 0, "cell": "rnn"}),
        (["mean", "-1"], None),
        (["max", "0"], None),
        (["mean"], None),
        (["mean", "0", "--cell", "tanh"], None),
    ],
    "torch_numerals.py": [
        ([], {"single_bias": False, "feed": False, "seed": 0, "epochs": 20, "cell": "rnn"}),
        (
            ["--single-bias", "--feed", "--seed", "1", "--epochs", "2", "--cell", "gru"],
            {"single_bias": True, "feed": True, "seed": 1, "epochs": 2, "cell": "gru"},
        ),
        (["--cell", "tanh"], None),
        (["--seed"], None),
    ],
    "torch_adding.py": [
        (
            ["--cell", "lstm", "--length", "50", "--forget-bias", "none"],
            {"cell": "lstm", "length": 50, "forget_bias": "none", "init": "ours", "steps": 3000},
        ),
        (["--cell", "lstm", "--length", "50", "--forget-bias", "-0.5"], {"forget_bias": "-0.5"}),
        (["--cell", "lstm", "--length", "50", "--forget-bias", "chrono"], {"forget_bias": "chrono"}),
        (["--cell", "lstm", "--length", "50", "--forget-bias", "big"], None),
        (["--length", "50"], None),
    ],
    "torch_attention.py": [
        (["pinyin"], {"data": "pinyin", "dropout": 0.0, "cell": "rnn", "uni": False}),
        (["pinyin", "--dropout", "0.3"], {"dropout": 0.3}),
        (["pinyin", "--dropout", "1"], None),
        (["pinyin", "--dropout", "-0.1"], None),
    ],
}

# Stops the script right after its parser ran: prints, for each argument list, the parsed values
# and the parser's description and options, or the parser's error message.
PROBE = r"""
import argparse, contextlib, io, json, runpy, sys
script, argvs = sys.argv[1], json.loads(sys.argv[2])
class Parsed(BaseException):
    pass
original = argparse.ArgumentParser.parse_args
def parse_args(self, args=None, namespace=None):
    raise Parsed(self, original(self, args, namespace))
argparse.ArgumentParser.parse_args = parse_args
results = []
for argv in argvs:
    sys.argv = [script, *argv]
    out = io.StringIO()
    try:
        with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
            runpy.run_path(script, run_name="__main__")
        results.append({"error": "the script ran to its end without calling parse_args"})
    except Parsed as stop:
        parser, namespace = stop.args
        options = [{"flags": a.option_strings, "help": a.help, "nargs": a.nargs} for a in parser._actions
                   if not isinstance(a, argparse._HelpAction)]
        results.append({"args": vars(namespace), "description": parser.description, "options": options})
    except SystemExit as e:
        results.append({"error": out.getvalue().strip() or f"exit status {e.code}"})
print(json.dumps(results))
"""


def script_path(name):
    return os.path.join(ROOT, "docs", "crosscheck", name)


def run(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )


def code_pieces(path):
    """(line number, text) of the code in a file: for Markdown the code blocks and spans
    (:func:`markdown_code`), for anything else every line, a line followed by lines starting with
    "[" (a usage line wrapped in a docstring) or ending in a backslash joined with those."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".md"):
        return [(number, code) for number, code, _ in markdown_code(text)]
    joined = []
    for number, line in enumerate(text.splitlines(), 1):
        if (
            joined
            and joined[-1][0] + joined[-1][2] == number
            and (joined[-1][1].endswith("\\") or line.strip().startswith("["))
        ):
            first, before, count = joined[-1]
            joined[-1] = (first, before.rstrip("\\") + " " + line.strip(), count + 1)
        else:
            joined.append((number, line, 1))
    return [(number, text) for number, text, _ in joined]


def argument_lists(usage):
    """The argument lists a usage text stands for (see the module docstring)."""
    found = []
    for text in (usage.replace("[", " ").replace("]", " "), re.sub(r"\[[^\]]*\]", " ", usage)):
        words = [word.split("|") for word in shlex.split(text)]
        for i in range(max((len(w) for w in words), default=1)):
            argv = [METAVARS.get(w[i % len(w)], w[i % len(w)]) for w in words]
            if argv not in found:
                found.append(argv)
    return found


def documented_commands():
    """(where, script, usage text after the script's name) for every mention with arguments."""
    files = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "Makefile")]
    files += sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    files += sorted(glob.glob(os.path.join(ROOT, "docs", "crosscheck", "*.py")))
    files += sorted(glob.glob(os.path.join(ROOT, "examples", "*.py")))
    files += sorted(p for p in glob.glob(os.path.join(ROOT, "notebooks", "*")) if p.endswith((".py", ".md")))
    found = []
    for path in filter(os.path.exists, files):
        for number, text in code_pieces(path):
            for match in re.finditer(r"docs/crosscheck/(\w+\.py)", text):
                # up to the end of a code span, a comment, a string in code or a "(needs: ...)" remark
                usage = re.split(r"`|#|\"|'|\s\(", text[match.end() :])[0].strip()
                if usage:  # without arguments it names the file, not a command
                    found.append((f"{os.path.relpath(path, ROOT)}:{number}", match.group(1), usage))
    return found


COMMANDS = documented_commands()


def usage_of(name):
    """The usage text in the script's own docstring."""
    return next(
        usage
        for where, script, usage in COMMANDS
        if script == name and where.startswith(f"docs/crosscheck/{name}:")
    )


def minimal_command(name):
    """The docstring's usage without its optional parts, first alternatives: a valid command."""
    return argument_lists(re.sub(r"\[[^\]]*\]", " ", usage_of(name)))[0]


@functools.lru_cache(maxsize=None)
def probe(name):
    """{argument tuple: result} for every documented command of the script and those of MEANS."""
    with open(script_path(name), encoding="utf-8") as f:
        assert "parse_args(" in f.read(), f"{name} does not parse its arguments with argparse"
    argvs = [argv for _, script, usage in COMMANDS if script == name for argv in argument_lists(usage)]
    argvs += [argv for argv, _ in MEANS.get(name, [])] + [minimal_command(name)]
    proc = run("-c", PROBE, script_path(name), json.dumps(argvs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(zip(map(tuple, argvs), json.loads(proc.stdout.splitlines()[-1])))


def test_the_docs_show_commands():
    """The collector finds what it must check (so the tests below cannot pass empty)."""
    scripts_in_results = {script for where, script, _ in COMMANDS if where.startswith("docs/results.md")}
    assert {
        "torch_same_init.py",
        "torch_numerals.py",
        "torch_reviews.py",
        "torch_attention.py",
    } <= scripts_in_results
    assert ["400"] in [
        argv for _, s, usage in COMMANDS if s == "torch_same_init.py" for argv in argument_lists(usage)
    ]
    for name in SCRIPTS:  # each script shows its own usage, wrapped lines included
        assert usage_of(name)
    assert argument_lists(usage_of("torch_numerals.py"))[0][-2:] == ["--cell", "rnn"]
    assert minimal_command("torch_adding.py") == ["--cell", "rnn", "--length", "5"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_prints_usage_and_exits(name):
    proc = run(script_path(name), "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:"), proc.stdout[:500]
    with open(script_path(name), encoding="utf-8") as f:
        first_line = ast.get_docstring(ast.parse(f.read())).splitlines()[0]
    assert " ".join(first_line.split()) in " ".join(proc.stdout.split())


@pytest.mark.parametrize("name", SCRIPTS)
def test_an_unknown_option_exits_2_before_training(name):
    """A valid command (the docstring's usage without its optional parts) plus an unknown option."""
    proc = run(script_path(name), *minimal_command(name), UNKNOWN)
    assert proc.returncode == 2, (proc.stdout[-1000:], proc.stderr[-2000:])
    assert f"unrecognized arguments: {UNKNOWN}" in proc.stderr
    assert proc.stdout == "", "it printed something, so it went on after parsing"


@pytest.mark.parametrize("name", SCRIPTS)
def test_documented_commands_parse(name):
    results = probe(name)
    refused = [
        f"{where}: {name} {' '.join(argv)}: {results[tuple(argv)]['error']}"
        for where, script, usage in COMMANDS
        if script == name
        for argv in argument_lists(usage)
        if "error" in results[tuple(argv)]
    ]
    assert not refused, "\n".join(refused)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_option_says_its_default(name):
    with open(script_path(name), encoding="utf-8") as f:
        first_line = ast.get_docstring(ast.parse(f.read())).splitlines()[0]
    parsed = probe(name)[tuple(minimal_command(name))]
    assert parsed.get("description") == first_line, parsed
    missing = [o["flags"] for o in parsed["options"] if o["flags"] and "default" not in (o["help"] or "")]
    assert not missing, f"options whose help does not say their default: {missing}"


@pytest.mark.parametrize("name", sorted(MEANS))
def test_the_spelling_keeps_its_meaning(name):
    results = probe(name)
    for argv, expected in MEANS[name]:
        result = results[tuple(argv)]
        if expected is None:
            assert "error" in result and "usage:" in result["error"], (argv, result)
        else:
            assert "args" in result, (argv, result)
            assert {k: result["args"][k] for k in expected} == expected, argv
