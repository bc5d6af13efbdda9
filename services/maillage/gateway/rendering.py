"""The person's disclosure report as a document they read, in French, Dutch or German: lines in, HTML and PDF out.

Pure: no database, no Kafka, no clock. Every word comes from the `report` catalogs (core/i18n), every value
is escaped, and the PDF uses the standard Helvetica font (WinAnsi: é è à ç ë ï ü ö ß « » œ), which every PDF
reader has: the gateway's image needs no font file.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from xml.sax.saxutils import escape as xml_escape
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_datetime
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import Flowable

from maillage.core.i18n import translate
from maillage.domain.subject_report import ReportLine
from maillage.domain.vocabulary import Category, LegalBasis

DOMAIN = "report"
Translate = Callable[..., str]  # a message of the report's catalogs in the document's language, fields filled in
PDF_ENCODING = "cp1252"  # what Helvetica's WinAnsi encoding covers


def _zone() -> tzinfo:
    """Belgian time, as the person lives it; UTC in an image without time zone data."""
    try:
        return ZoneInfo("Europe/Brussels")
    except ZoneInfoNotFoundError:
        return UTC


@dataclass(frozen=True)
class Agency:
    name: str
    sector: str


@dataclass(frozen=True)
class ReportRequest:
    """What the document is drawn up for: in which language, at which agency (the person's contact), when."""

    language: str
    request_id: str
    agency: Agency  # the agency that registered the request: where the person objects first
    drawn_up_at: datetime


@dataclass(frozen=True)
class Document:
    """The report's words, in one language, before any format: the HTML and the PDF say exactly the same."""

    language: str
    title: str
    introduction: tuple[str, ...]
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str | None
    glossaries: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    objection_heading: str
    objection: tuple[str, ...]
    safety: str


def compose(request: ReportRequest, lines: Sequence[ReportLine], *, agencies: Mapping[str, Agency]) -> Document:
    """The document's words: an introduction, one row per disclosure, what each kind of information and each
    legal basis means, and how to object."""
    lang = request.language

    def t(key: str, **fields: object) -> str:
        return translate(lang, key, domain=DOMAIN, **fields)

    zone = _zone()
    drawn_up = format_date(request.drawn_up_at.astimezone(zone), format="long", locale=lang)
    contact = _agency(t, request.agency)
    return Document(
        language=lang,
        title=t("report.title"),
        introduction=(
            t("report.intro", agency=request.agency.name),
            t("report.not-the-content"),
            t("report.generated", date=drawn_up, reference=request.request_id),
            t("report.count", count=len(lines)),
        ),
        headers=tuple(t(f"report.table.{h}") for h in ("when", "from", "to", "what", "basis")),
        rows=tuple(_row(t, line, agencies=agencies, zone=zone, lang=lang) for line in lines),
        empty=None if lines else t("report.none"),
        glossaries=(
            (t("report.categories.heading"), _categories(t, lines)),
            (t("report.bases.heading"), _bases(t, lines)),
        ),
        objection_heading=t("report.object.heading"),
        objection=(
            t("report.object.agency", agency=contact),
            t("report.object.consent"),
            t("report.object.authority"),
            t("report.object.authority-contact"),
        ),
        safety=t("report.safety"),
    )


def _agency(t: Translate, agency: Agency | None) -> str:
    if agency is None:
        return t("report.agency.gone")
    return t("report.agency", name=agency.name, sector=t(f"sector.{agency.sector}"))


def _row(t: Translate, line: ReportLine, *, agencies: Mapping[str, Agency], zone: tzinfo, lang: str) -> tuple[str, ...]:
    recipient = agencies.get(line.recipient)
    # The sector the recipient had when it received: an agency that left the network is still named by it.
    received_by = _agency(t, Agency(recipient.name, line.sector)) if recipient else t("report.agency.gone")
    kind = t(f"kind.{_kind(line.event_type)}")
    what = ", ".join(t(f"category.{c.value}.name") for c in line.categories) or t("report.only-the-exchange")
    basis = t(f"basis.{line.basis.value}.name")
    if line.legal_reference:
        basis += f" ({t('report.legal-reference', reference=line.legal_reference)})"
    return (
        format_datetime(line.at.astimezone(zone), format="short", locale=lang),
        _agency(t, agencies.get(line.sender)),
        received_by,
        t("report.what", kind=kind, categories=what),
        basis,
    )


def _kind(event_type: str) -> str:
    """`maillage.referral.created.v1` → `referral.created`: the key of its name in the catalogs."""
    parts = event_type.split(".")
    known = {
        "referral.created",
        "referral.responded",
        "alert.raised",
        "alert.acknowledged",
        "alert.escalated",
        "case_conference.convened",
        "case_conference.closed",
        "consultation.requested",
        "consultation.answered",
    }
    kind = ".".join(parts[1:3]) if len(parts) == 4 else ""
    return kind if kind in known else "other"


def _categories(t: Translate, lines: Sequence[ReportLine]) -> tuple[tuple[str, str], ...]:
    """Every kind of information, so that the person also learns what was *not* shared."""
    del lines
    return tuple((t(f"category.{c.value}.name"), t(f"category.{c.value}.explain")) for c in Category)


def _bases(t: Translate, lines: Sequence[ReportLine]) -> tuple[tuple[str, str], ...]:
    used = {line.basis for line in lines}
    shown = [b for b in LegalBasis if b is not LegalBasis.ANONYMOUS or b in used]
    return tuple((t(f"basis.{b.value}.name"), t(f"basis.{b.value}.explain")) for b in shown)


# --- HTML ---------------------------------------------------------------------------------------------------

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5;"
    "color:#1b1b1b}table{border-collapse:collapse;width:100%}th,td{border:1px solid #999;padding:.4rem;"
    "text-align:left;vertical-align:top}th{background:#eee}dt{font-weight:bold;margin-top:.5rem}"
    ".safety{border-left:4px solid #b00;padding-left:.75rem}"
)


def to_html(document: Document) -> str:
    """A standalone page: no script, no link, every value escaped."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{e(document.language)}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(document.title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{e(document.title)}</h1>",
        *(f"<p>{e(p)}</p>" for p in document.introduction),
    ]
    if document.empty is not None:
        parts.append(f"<p>{e(document.empty)}</p>")
    else:
        parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in document.headers) + "</tr></thead>")
        parts.append("<tbody>")
        parts += ["<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in document.rows]
        parts.append("</tbody></table>")
    for heading, definitions in document.glossaries:
        parts.append(f"<h2>{e(heading)}</h2><dl>")
        parts += [f"<dt>{e(term)}</dt><dd>{e(meaning)}</dd>" for term, meaning in definitions]
        parts.append("</dl>")
    parts.append(f"<h2>{e(document.objection_heading)}</h2>")
    parts += [f"<p>{e(p)}</p>" for p in document.objection]
    parts.append(f'<p class="safety">{e(document.safety)}</p>')
    parts.append("</main></body></html>")
    return "\n".join(parts)


# --- PDF ----------------------------------------------------------------------------------------------------


def _pdf_text(text: str) -> str:
    """Escaped for reportlab's paragraph markup, and within what Helvetica can draw (a name in another script
    shows as `?` rather than as an empty box)."""
    drawable = text.encode(PDF_ENCODING, errors="replace").decode(PDF_ENCODING)
    return xml_escape(drawable)


def to_pdf(document: Document) -> bytes:
    """An A4 PDF, the same bytes for the same document (no creation date, no random id): a report decided again
    after a crash is the report first sent."""
    styles = getSampleStyleSheet()
    body, cell = styles["BodyText"], ParagraphStyle("cell", parent=styles["BodyText"], fontSize=8.5, leading=10.5)
    head = ParagraphStyle("head", parent=cell, fontName="Helvetica-Bold")
    story: list[Flowable] = [Paragraph(_pdf_text(document.title), styles["Title"])]
    story += [Paragraph(_pdf_text(p), body) for p in document.introduction]
    story.append(Spacer(1, 0.3 * cm))
    if document.empty is not None:
        story.append(Paragraph(_pdf_text(document.empty), body))
    else:
        data = [[Paragraph(_pdf_text(h), head) for h in document.headers]]
        data += [[Paragraph(_pdf_text(c), cell) for c in row] for row in document.rows]
        table = Table(data, colWidths=[2.3 * cm, 3.6 * cm, 3.8 * cm, 4.0 * cm, 3.3 * cm], repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story.append(table)
    for heading, definitions in document.glossaries:
        story.append(Paragraph(_pdf_text(heading), styles["Heading2"]))
        story += [Paragraph(f"<b>{_pdf_text(term)}</b> — {_pdf_text(meaning)}", body) for term, meaning in definitions]
    story.append(Paragraph(_pdf_text(document.objection_heading), styles["Heading2"]))
    story += [Paragraph(_pdf_text(p), body) for p in document.objection]
    story += [Spacer(1, 0.4 * cm), Paragraph(f"<b>{_pdf_text(document.safety)}</b>", body)]
    buffer = io.BytesIO()
    pdf = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=2 * cm,
        rightMargin=2 * cm,
        topMargin=2 * cm,
        bottomMargin=2 * cm,
        title=document.title,
        lang=document.language,
        invariant=True,
    )
    pdf.build(story)
    return buffer.getvalue()


def render(request: ReportRequest, lines: Sequence[ReportLine], *, agencies: Mapping[str, Agency]) -> tuple[str, bytes]:
    """The report as HTML and as PDF."""
    document = compose(request, lines, agencies=agencies)
    return to_html(document), to_pdf(document)
