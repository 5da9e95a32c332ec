"""The case study as a self-contained HTML page and as a PDF.

Both start from the markdown file. HTML: markdown-it-py (the CommonMark parser rich
already depends on, with its table rule) plus a small stylesheet, every figure
embedded as a base64 data URI so the page is one file. PDF: fpdf2 (pure Python, no
system libraries), driven token by token from the same markdown parse, so the tables
are real tables and the figures keep their aspect ratio. Fonts are the DejaVu faces
matplotlib ships, so Δ, ×, → and … render everywhere.
"""

from __future__ import annotations

import base64
import html as html_lib
import mimetypes
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
from markdown_it import MarkdownIt
from markdown_it.token import Token

CSS = """
:root { --ink: #1f2328; --muted: #656d76; --line: #d8dee4; --accent: #2F6DB5; --bad: #C23B3B; }
* { box-sizing: border-box; }
body { font: 15px/1.55 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       color: var(--ink); max-width: 1080px; margin: 2.5rem auto; padding: 0 1.5rem; background: #fff; }
h1 { font-size: 1.9rem; border-bottom: 3px solid var(--accent); padding-bottom: .4rem; }
h2 { font-size: 1.35rem; margin-top: 2.4rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
h3 { font-size: 1.1rem; margin-top: 1.6rem; color: var(--accent); }
p, li { max-width: 78ch; }
p:has(img) { max-width: none; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .84rem; display: block; overflow-x: auto; }
th, td { padding: .32rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f0f4f9; text-align: left; border-bottom: 2px solid #b9c6d6; }
tr.alt td { background: #f6f8fa; }
tr.cont td { border-top: none; }
td[style*="right"], th[style*="right"] { font-variant-numeric: tabular-nums; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; margin: 1rem auto; border: 1px solid var(--line);
      border-radius: 6px; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .86em; background: #f3f5f7;
       padding: .1em .3em; border-radius: 4px; }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem;
      overflow-x: auto; font-size: .8rem; line-height: 1.4; }
pre code { background: none; padding: 0; }
em { color: var(--muted); }
"""


FIGURE_MAX_PAGE_SHARE = 0.22
"""The largest share of a PDF page's height one figure may take (taller ones are scaled down whole)."""
FIGURE_MIN_SHRINK = 0.8
"""A figure that does not fit the rest of a page is shrunk into it down to this share of its size; less would
make its text too small to read when printed."""


def markdown_parser() -> MarkdownIt:
    """CommonMark with tables; raw HTML in the markdown is not passed through."""
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def to_html(markdown: str, base_dir: Path, *, title: str) -> str:
    """One self-contained HTML page: figures inlined as data URIs.

    Args:
        markdown: the case study.
        base_dir: the folder image links are relative to (the markdown file's folder).
        title: the page title.
    """
    body = markdown_parser().render(markdown)

    def inline(m: re.Match[str]) -> str:
        src = html_lib.unescape(m.group(1))
        path = (base_dir / src).resolve()
        if not path.is_file():
            return m.group(0)
        mime = mimetypes.guess_type(path.name)[0] or "image/png"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img src="data:{mime};base64,{data}"'

    body = re.sub(r'<img src="([^"]+)"', inline, body)
    body = re.sub(r"<tbody>(.*?)</tbody>", lambda m: f"<tbody>{_stripe_rows(m.group(1))}</tbody>", body,
                  flags=re.DOTALL)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html_lib.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n")


def _stripe_rows(tbody: str) -> str:
    """Stripe body rows by group: a row whose first cell is empty continues the row above."""
    out, group = [], -1
    for row in re.split(r"(?=<tr>)", tbody):
        if not row.startswith("<tr>"):
            out.append(row)
            continue
        cont = re.match(r"<tr>\s*<td[^>]*></td>", row) is not None
        group += 0 if cont and group >= 0 else 1
        classes = " ".join(c for c in ("alt" if group % 2 else "", "cont" if cont else "") if c)
        out.append(row.replace("<tr>", f'<tr class="{classes}">', 1) if classes else row)
    return "".join(out)


# --- PDF ----------------------------------------------------------------------------------

_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_FONTS = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf",
          "BI": "DejaVuSans-BoldOblique.ttf"}
INK = (31, 35, 40)
MUTED = (101, 109, 118)
ACCENT = (47, 109, 181)
LINE = (216, 222, 228)
HEAD_FILL = (236, 242, 249)
ROW_FILL = (248, 250, 252)
CODE_FILL = (246, 248, 250)
BODY_PT = 9.0
"""Body text: the smallest size a printed page reads comfortably at (a test holds it)."""
LEADING = 0.46
"""Line height in mm per pt of body text (about 1.3 lines)."""
NARROW_MM = 17.0
HEADING_PT = {1: 15.0, 2: 11.5, 3: 10.0}


@dataclass
class Run:
    """A piece of inline text with one style: B, I, BI, mono or plain."""

    text: str
    style: str = ""


@dataclass
class _Table:
    rows: list[list[tuple[list[Run], str]]] = field(default_factory=list)  # (runs, align) per cell
    head_rows: int = 0


def to_pdf(markdown: str, base_dir: Path, path: Path, *, title: str) -> Path:
    """Render the case study to a PDF at ``path`` (A4, DejaVu fonts, numbered pages)."""
    from fpdf import FPDF

    class _Doc(FPDF):
        renderer: _Renderer | None = None

        def header(self) -> None:
            if self.renderer is not None:  # figures that did not fit the last page open this one
                self.renderer.place_pending()

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("dejavu", "", 7.5)
            self.set_text_color(*MUTED)
            self.cell(0, 6, f"{title}  ·  page {self.page_no()}/{{nb}}", align="C")

    pdf = _Doc(format="A4", unit="mm")
    pdf.set_margins(13, 12, 13)
    pdf.set_auto_page_break(True, margin=13)
    for style, name in _FONTS.items():
        pdf.add_font("dejavu", style, str(_FONT_DIR / name))
    pdf.add_font("dejavumono", "", str(_FONT_DIR / "DejaVuSansMono.ttf"))
    pdf.set_title(title)
    pdf.set_creator("bddengine report")
    pdf.add_page()
    pdf.renderer = _Renderer(pdf, base_dir)
    pdf.renderer.render(markdown_parser().parse(markdown))
    while pdf.renderer.pending:
        pdf.add_page()
    pdf.output(str(path))
    return path


class _Renderer:
    """Walks the markdown-it token stream and draws it with fpdf2."""

    def __init__(self, pdf, base_dir: Path) -> None:
        self.pdf = pdf
        self.base = base_dir
        self.lists: list[list] = []  # [kind, counter]
        self.table: _Table | None = None
        self.row: list | None = None
        self.cell_align = "L"
        self.pending: list[tuple[list[tuple[str, str]], list[Run]]] = []
        """Figures (images, caption) waiting for the next page; the text goes on filling this one."""

    def render(self, tokens: list[Token]) -> None:
        """Draw every block of the parsed markdown, in order."""
        i = 0
        while i < len(tokens):
            i = self._token(tokens, i)

    def _token(self, tokens: list[Token], i: int) -> int:
        t = tokens[i]
        pdf = self.pdf
        if t.type == "heading_open":
            level = int(t.tag[1])
            need = 12 if level <= 2 else 10  # a heading and two lines; a figure that follows may float on
            if pdf.get_y() + need > pdf.page_break_trigger and pdf.get_y() > pdf.t_margin + 5:
                pdf.add_page()  # keep a heading with what follows it
            self._heading(level, _runs(tokens[i + 1]))
            return i + 3
        if t.type in ("bullet_list_open", "ordered_list_open"):
            self.lists.append([t.type, int(t.attrGet("start") or 1)])
            return i + 1
        if t.type in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
            if not self.lists:
                pdf.ln(1.5)
            return i + 1
        if t.type == "list_item_open":
            self._list_item_start()
            return i + 1
        if t.type == "list_item_close":
            pdf.set_left_margin(16 + 6 * (len(self.lists) - 1))
            return i + 1
        if t.type == "paragraph_open":
            images = self._image_block(tokens, i)
            if not images:
                self._paragraph(_runs(tokens[i + 1]), in_list=bool(self.lists))
                return i + 3
            caption: list[Run] = []
            if i + 4 < len(tokens) and tokens[i + 3].type == "paragraph_open" and \
                    tokens[i + 4].content.startswith("*From "):  # the figure's source line goes with it
                caption = _runs(tokens[i + 4])
                i += 3
            self._figure(images, caption)
            return i + 3
        if t.type == "table_open":
            self.table = _Table()
            return i + 1
        if t.type == "tr_open":
            self.row = []
            return i + 1
        if t.type in ("th_open", "td_open"):
            style = t.attrGet("style") or ""
            align = "R" if "right" in style else ("C" if "center" in style else "L")
            assert self.row is not None
            self.row.append((_runs(tokens[i + 1]), align))
            return i + 3
        if t.type == "tr_close":
            assert self.table is not None and self.row is not None
            self.table.rows.append(self.row)
            self.row = None
            return i + 1
        if t.type == "thead_close":
            assert self.table is not None
            self.table.head_rows = len(self.table.rows)
            return i + 1
        if t.type == "table_close":
            assert self.table is not None
            self._table(self.table)
            self.table = None
            return i + 1
        if t.type in ("fence", "code_block"):
            self._code(t.content)
            return i + 1
        if t.type == "hr":
            pdf.ln(2)
            pdf.set_draw_color(*LINE)
            pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
            pdf.ln(3)
            return i + 1
        return i + 1  # html blocks, closes handled by the opens, thead/tbody opens

    @staticmethod
    def _image_block(tokens: list[Token], i: int) -> list[tuple[str, str]]:
        """(src, alt) of a paragraph at ``i`` that holds only images; [] otherwise."""
        if i + 1 >= len(tokens) or tokens[i].type != "paragraph_open":
            return []
        children = tokens[i + 1].children or []
        images = [(c.attrGet("src") or "", c.content) for c in children if c.type == "image"]
        if images and all(c.type in ("image", "softbreak") or not c.content.strip() for c in children):
            return images
        return []

    def _image_size(self, image: tuple[str, str]) -> tuple[float, float]:
        """Width and height (mm) an image takes on the page; (0, 0) when it is missing."""
        from PIL import Image

        path = (self.base / image[0]).resolve()
        if not path.is_file():
            return 0.0, 0.0
        with Image.open(path) as im:
            w_px, h_px = im.size
        # a figure takes at most a quarter of a page: six charts and the diagram fit in four pages with the text
        max_w, max_h = self.pdf.epw, self.pdf.eph * FIGURE_MAX_PAGE_SHARE
        w = min(max_w, w_px / 150 * 25.4 * 1.05)  # the figures are drawn at 150 dpi
        h = w * h_px / w_px
        if h > max_h:
            h, w = max_h, max_h * w_px / h_px
        return w, h

    def _font(self, style: str, size: float) -> None:
        if style == "mono":
            self.pdf.set_font("dejavumono", "", size * 0.92)
        else:
            self.pdf.set_font("dejavu", style, size)

    def _heading(self, level: int, runs: list[Run]) -> None:
        pdf = self.pdf
        size = HEADING_PT.get(level, 10.5)
        if pdf.get_y() > pdf.page_break_trigger - (28 if level <= 2 else 22):  # keep with what follows
            pdf.add_page()
        pdf.ln(5 if level == 1 else 4)
        pdf.set_text_color(*(ACCENT if level == 3 else INK))
        self._font("B", size)
        pdf.multi_cell(0, size * 0.5, "".join(r.text for r in runs), new_x="LMARGIN", new_y="NEXT")
        if level <= 2:
            pdf.set_draw_color(*(ACCENT if level == 1 else LINE))
            pdf.set_line_width(0.6 if level == 1 else 0.25)
            pdf.line(pdf.l_margin, pdf.get_y() + 0.8, pdf.w - pdf.r_margin, pdf.get_y() + 0.8)
            pdf.set_line_width(0.2)
        pdf.ln(2.5)
        pdf.set_text_color(*INK)

    def _list_item_start(self) -> None:
        pdf = self.pdf
        depth = len(self.lists)
        indent = 16 + 6 * depth
        pdf.set_left_margin(indent)
        pdf.set_x(indent - 4.5)
        kind = self.lists[-1]
        self._font("", BODY_PT)
        pdf.set_text_color(*ACCENT)
        if kind[0] == "ordered_list_open":
            marker = f"{kind[1]}."
            kind[1] += 1
            pdf.set_x(indent - 6)
        else:
            marker = "•" if depth == 1 else "–"
        pdf.write(BODY_PT * LEADING, marker)
        pdf.set_text_color(*INK)
        pdf.set_x(indent)

    def _paragraph(self, runs: list[Run], *, in_list: bool) -> None:
        pdf = self.pdf
        h = BODY_PT * LEADING
        for r in runs:
            if r.text == "\n":
                pdf.ln(h)
                continue
            self._font(r.style, BODY_PT)
            pdf.set_text_color(*(MUTED if r.style == "I" else INK))
            self._write_words(r.text, h)
        pdf.set_text_color(*INK)
        pdf.ln(h)
        pdf.ln(0.8 if in_list else 2.2)

    def _write_words(self, text: str, h: float) -> None:
        """Write word by word, so a word that does not fit starts the next line whole."""
        pdf = self.pdf
        for word in re.findall(r"\S+\s*|\s+", text):
            room = pdf.w - pdf.r_margin - pdf.get_x() - 2 * pdf.c_margin - 0.2  # what write() allows
            if pdf.get_string_width(word.rstrip()) > room and pdf.get_x() > pdf.l_margin + 0.5:
                pdf.ln(h)
                word = word.lstrip()
            pdf.write(h, word)

    def _code(self, text: str) -> None:
        pdf = self.pdf
        self._font("mono", 7.8)
        pdf.set_fill_color(*CODE_FILL)
        pdf.set_draw_color(*LINE)
        pdf.ln(0.5)
        pdf.multi_cell(0, 3.6, text.rstrip("\n"), border=1, fill=True, padding=2, align="L",
                       new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2.5)

    def _figure_size(self, images: list[tuple[str, str]]) -> tuple[list[tuple[str, str, float, float]], float]:
        """Each image's (src, alt, w, h) on one row at one height, and that height (0 when all are missing)."""
        sizes = [(src, alt, *self._image_size((src, alt))) for src, alt in images]
        shown = [x for x in sizes if x[2]]
        if not shown:
            return [], 0.0
        if len(shown) == 1:
            return shown, shown[0][3]
        gap = 3.0 * (len(shown) - 1)
        ratios = [w / h for _, _, w, h in shown]
        h = min((self.pdf.epw - gap) / sum(ratios), self.pdf.eph * FIGURE_MAX_PAGE_SHARE)
        return [(src, alt, h * r, h) for (src, alt, _, _), r in zip(shown, ratios, strict=True)], h

    def _figure(self, images: list[tuple[str, str]], caption: list[Run]) -> None:
        """Images side by side with their caption: here if they fit (shrunk at most to `FIGURE_MIN_SHRINK`),
        else at the top of the next page while the text goes on filling this one."""
        shown, h = self._figure_size(images)
        if not shown:
            self._paragraph([Run(f"[figure missing: {', '.join(src for src, _ in images)}]", "I")], in_list=False)
            return
        room = self.pdf.page_break_trigger - self.pdf.get_y() - 1 - (5 if caption else 0)
        if self.pending or room < h * FIGURE_MIN_SHRINK:
            self.pending.append((images, caption))
            return
        self._draw_figure(shown, min(1.0, room / h), caption)

    def place_pending(self) -> None:
        """Draw the waiting figures at the top of a new page, as many as fit."""
        while self.pending:
            images, caption = self.pending[0]
            shown, h = self._figure_size(images)
            room = self.pdf.page_break_trigger - self.pdf.get_y() - 1 - (5 if caption else 0)
            if h > room and self.pdf.get_y() > self.pdf.t_margin + 1:
                return
            self.pending.pop(0)
            self._draw_figure(shown, min(1.0, room / h), caption)

    def _draw_figure(self, shown: list[tuple[str, str, float, float]], scale: float, caption: list[Run]) -> None:
        pdf = self.pdf
        gap = 3.0
        width = sum(w for _, _, w, _ in shown) * scale + gap * (len(shown) - 1)
        x, y = pdf.l_margin + (pdf.epw - width) / 2, pdf.get_y()
        for src, alt, w, h in shown:
            pdf.image(str((self.base / src).resolve()), x=x, y=y, w=w * scale, h=h * scale, alt_text=alt)
            x += w * scale + gap
        pdf.set_y(y + max(h for *_, h in shown) * scale + 1.5)
        if caption:
            pdf.set_font("dejavu", "I", 7.5)
            pdf.set_text_color(*MUTED)
            pdf.multi_cell(0, 3.5, "".join(r.text for r in caption), align="C", new_x="LMARGIN", new_y="NEXT")
            pdf.set_text_color(*INK)
        pdf.ln(2.5)

    def _table(self, table: _Table) -> None:
        from fpdf.enums import TableBordersLayout, TableCellFillMode
        from fpdf.fonts import FontFace

        pdf = self.pdf
        n_cols = max(len(r) for r in table.rows)
        room = pdf.epw - 0.01  # a hair under: fpdf2 rejects a total that rounds above epw
        for size in (8.0, 7.5, 7.0, 6.5, 6.0):
            natural, shortest = self._widths(table, n_cols, size)
            if sum(natural) <= room or sum(shortest) <= room:
                break
        widths = _fit(natural, shortest, room)
        self._font("", size)
        pdf.set_draw_color(*LINE)
        pdf.ln(1)
        with pdf.table(
            col_widths=widths, width=sum(widths), align="LEFT", markdown=True, line_height=size * 0.5,
            borders_layout=TableBordersLayout.HORIZONTAL_LINES, first_row_as_headings=table.head_rows > 0,
            num_heading_rows=max(1, table.head_rows),
            headings_style=FontFace(emphasis="BOLD", fill_color=HEAD_FILL, color=INK),
            cell_fill_mode=TableCellFillMode.NONE, padding=(1.0, 1.4), v_align="TOP",
        ) as t:
            group = -1
            for r_i, cells in enumerate(table.rows):
                row = t.row()
                body = r_i >= table.head_rows
                cont = body and not "".join(r.text for r in cells[0][0]).strip()  # continues the row above
                group += 1 if body and not (cont and group >= 0) else 0
                style = FontFace(fill_color=ROW_FILL) if body and group % 2 else None
                for runs, align in cells + [([Run("")], "L")] * (n_cols - len(cells)):
                    row.cell(_to_fpdf_markdown(runs), align=align, style=style)
        pdf.ln(3)

    def _widths(self, table: _Table, n_cols: int, size: float) -> tuple[list[float], list[float]]:
        """Per column: the width of its longest cell on one line, and of its longest word."""
        pdf = self.pdf
        natural, shortest = [0.0] * n_cols, [0.0] * n_cols
        for r_i, cells in enumerate(table.rows):
            for c_i, (runs, _) in enumerate(cells):
                line = 0.0
                for r in runs:
                    self._font("B" if (r_i < table.head_rows or "B" in r.style) else r.style or "", size)
                    line += pdf.get_string_width(r.text)
                    for word in r.text.split(" "):  # non-breaking spaces keep a number with its unit
                        shortest[c_i] = max(shortest[c_i], pdf.get_string_width(word) + 3.2)
                natural[c_i] = max(natural[c_i], line + 3.2)
        # a narrow column (numbers, short labels) keeps its width: it is never worth wrapping
        return natural, [n if n <= NARROW_MM else min(s, n) for s, n in zip(shortest, natural, strict=True)]


def _fit(natural: list[float], shortest: list[float], total: float) -> list[float]:
    """Column widths within ``total``: each at least its longest word, the room left shared by need."""
    if sum(natural) <= total:
        return natural
    if sum(shortest) >= total:
        return [total * w / sum(shortest) for w in shortest]
    need = [n - s for n, s in zip(natural, shortest, strict=True)]
    spare = total - sum(shortest)
    return [s + spare * x / sum(need) for s, x in zip(shortest, need, strict=True)]


def _runs(inline: Token) -> list[Run]:
    """Inline children -> styled runs (bold, italic, code); links keep their text."""
    runs: list[Run] = []
    bold = italic = False
    for c in inline.children or []:
        if c.type == "strong_open":
            bold = True
        elif c.type == "strong_close":
            bold = False
        elif c.type == "em_open":
            italic = True
        elif c.type == "em_close":
            italic = False
        elif c.type == "code_inline":
            runs.append(Run(c.content, "mono"))
        elif c.type in ("softbreak",):
            runs.append(Run(" ", ""))
        elif c.type == "hardbreak":
            runs.append(Run("\n", ""))
        elif c.type == "text":
            runs.append(Run(c.content, ("B" if bold else "") + ("I" if italic else "")))
        elif c.type == "image":
            runs.append(Run(c.content, "I"))
    return runs


def _to_fpdf_markdown(runs: list[Run]) -> str:
    """Runs as fpdf2's cell markdown: ``**bold**``, ``__italic__``; other markers escaped."""
    out = []
    for r in runs:
        text = r.text
        for marker in ("**", "__", "~~", "--"):
            text = text.replace(marker, "\\" + marker)
        if "B" in r.style and r.style != "mono":
            text = f"**{text}**"
        if "I" in r.style:
            text = f"__{text}__"
        out.append(text)
    return "".join(out)
