"""The code a Markdown page shows, for the tests that check what the docs tell a reader to type."""

import re


def markdown_code(text):
    """(line number, code, kind) for each piece of code in Markdown ``text``, in line order.

    kind "block": a line of a fenced block (```) or of an indented block (4 spaces), stripped; a
    line ending in a backslash is joined with the lines that continue it. kind "inline": a code
    span (`…`) of the prose, which may wrap onto the next line, its whitespace collapsed.
    """
    found, prose, in_fence = [], [], False
    lines = text.splitlines()
    continued = set()  # lines already joined to the one before them
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        elif in_fence or line.startswith("    "):
            if number not in continued:
                code, following = stripped, number
                while code.endswith("\\") and following < len(lines):
                    code = code[:-1].rstrip() + " " + lines[following].strip()
                    following += 1
                    continued.add(following)
                found.append((number, code, "block"))
        else:
            prose.append(line)
            continue
        prose.append("")  # code is not prose: keep the line numbers only
    prose_text = "\n".join(prose)
    for match in re.finditer(r"`([^`]+)`", prose_text):
        found.append(
            (prose_text.count("\n", 0, match.start()) + 1, " ".join(match.group(1).split()), "inline")
        )
    return sorted(found)
