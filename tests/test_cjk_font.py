"""Chinese labels in figures: the ``plot`` extra's font is registered, so no glyph is a box.

matplotlib warns "Glyph … missing from font(s) …" for each character it cannot draw; these tests
turn that warning into an error while drawing figures labelled in Chinese.
"""

import warnings

import pytest

pytest.importorskip("matplotlib", reason="figures need matplotlib (the plot extra)")

from tinygrad_rnn import plotting  # noqa: E402
from tinygrad_rnn.plotting.attention import find_cjk_font, plot_attention  # noqa: E402
from tinygrad_rnn.plotting.prefixes import plot_prefixes  # noqa: E402

LABELS = ["这", "家", "餐厅", "很", "难吃", "，", "服务", "也", "差", "。"]


class _NoMissingGlyphs(warnings.catch_warnings):
    """Inside: a "Glyph … missing from font(s)" warning is raised as an error."""

    def __enter__(self):
        result = super().__enter__()
        warnings.filterwarnings("error", message=".*[Gg]lyph.*missing")
        return result


def test_the_plot_extra_ships_a_chinese_font():
    path = plotting.bundled_cjk_font_path()
    assert path is not None, (
        f"mplfonts (part of the plot extra) is not installed: {plotting.PLOT_INSTALL_HINT}"
    )
    from matplotlib import ft2font

    font = ft2font.FT2Font(path)
    missing = [ch for ch in "".join(LABELS) if not font.get_char_index(ord(ch))]
    assert not missing, f"{path} has no glyph for {missing}"


def test_a_figure_with_chinese_labels_draws_every_glyph(tmp_path):
    plt = plotting.require_matplotlib()
    assert plotting.register_cjk_font() == plotting.CJK_FONT_FAMILY
    with _NoMissingGlyphs():
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.set_title("银行 行走 −0.5")  # Chinese, Latin and a minus sign
        ax.set_xticks(range(len(LABELS)), LABELS)
        ax.set_ylabel("P(负面)")
        fig.savefig(tmp_path / "plain.png", dpi=40)
        plt.close(fig)


def test_the_package_figures_have_no_font_note(tmp_path):
    with _NoMissingGlyphs():
        assert plot_prefixes(LABELS, {"LSTM": [0.5] * len(LABELS)}, tmp_path / "prefixes.png") is None
        assert (
            plot_attention(
                [[1.0, 0.0], [0.3, 0.7]], ["银", "行"], ["yin", "hang"], tmp_path / "attention.png"
            )
            is None
        )
    assert find_cjk_font() is not None  # what notebook 04 labels its axes with


def test_without_the_font_nothing_is_registered(monkeypatch):
    monkeypatch.setattr(plotting, "_add_bundled_font", lambda: None)
    import matplotlib

    before = list(matplotlib.rcParams["font.family"])
    assert plotting.register_cjk_font() is None
    assert list(matplotlib.rcParams["font.family"]) == before


def test_a_reset_of_the_settings_is_repaired():
    import matplotlib

    plotting.require_matplotlib()
    with matplotlib.rc_context({"font.family": ["sans-serif"]}):
        assert plotting.register_cjk_font() == plotting.CJK_FONT_FAMILY
        assert list(matplotlib.rcParams["font.family"]) == ["sans-serif", plotting.CJK_FONT_FAMILY]


def test_a_figure_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """Every figure goes through plotting.save_figure (files.atomic_write): a crash while
    matplotlib writes leaves the figure that was there before, and no temporary file."""
    import matplotlib.pyplot as plt

    from tinygrad_rnn.plotting import save_figure

    path = tmp_path / "figure.png"
    path.write_bytes(b"the old figure")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(fig, "savefig", crash)
    with pytest.raises(OSError, match="disk full"):
        save_figure(fig, path)
    assert path.read_bytes() == b"the old figure" and sorted(p.name for p in tmp_path.iterdir()) == [
        "figure.png"
    ]
    monkeypatch.undo()
    save_figure(fig, path)
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_plotting_module_calls_savefig_on_a_path_itself():
    import pathlib

    folder = pathlib.Path(plotting.__file__).parent
    direct = [
        f"{p.name}:{i}"
        for p in folder.glob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "fig.savefig(" in line and p.name != "__init__.py"
    ]
    assert not direct, f"write figures through plotting.save_figure (atomic): {direct}"
