import csv
import json
import logging
from pathlib import Path

import pytest

from rag.core.errors import ConfigError
from rag.core.text import sentences
from rag.pipelines.loaders import FileLoader, expand_sources

pytestmark = pytest.mark.unit


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "a.md").write_text("# Title A\n\nBody of a.")
    (tmp_path / "b.txt").write_text("plain text b")
    (tmp_path / "c.html").write_text(
        "<html><head><title>Page C</title><script>var x=1;</script></head>"
        "<body><h1>Heading</h1><p>Para one.</p></body></html>"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.md").write_text("nested d")
    (tmp_path / "ignored.bin").write_bytes(b"\x00\x01")
    return tmp_path


def test_expand_sources_walks_directories_and_reports_missing(corpus):
    files, errors = expand_sources([corpus, corpus / "nope.txt"])
    names = [f.split("/")[-1] for f in files]
    assert names == ["a.md", "b.txt", "c.html", "d.md"]
    assert errors == [
        {"source": (corpus / "nope.txt").as_posix(), "error": "no such file or directory"}
    ]


def test_a_deeply_nested_html_page_loads(tmp_path):
    page = tmp_path / "deep.html"
    page.write_text("<html><body>" + "<div>" * 5000 + "deep <b>text</b>" + "</div>" * 5000)
    (doc,) = FileLoader().run(sources=[str(page)])["documents"]
    assert doc.text == "deep text"


def test_text_markdown_html(corpus):
    files, _ = expand_sources([corpus])
    result = FileLoader().run(sources=files)
    assert result["errors"] == []
    docs = {d.id.split("/")[-1]: d for d in result["documents"]}
    assert docs["a.md"].metadata["title"] == "Title A"
    assert docs["a.md"].metadata["source"].endswith("a.md")
    assert docs["b.txt"].text == "plain text b"
    html = docs["c.html"]
    assert html.metadata["title"] == "Page C"
    assert "Para one." in html.text and "var x" not in html.text


def test_html_gives_one_line_per_block_and_keeps_inline_elements_in_their_line(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>T</title><style>p {}</style></head><body><h1>Tuning</h1>\n"
        "<p>Three parameters.\n<b>M</b> is the number of\n   links; <a href='#'>see</a> "
        "<code>efSearch</code>.</p><ul><li>one</li><li>two<br>lines</li></ul>"
        "<pre>code  line 1\ncode line 2</pre><table><tr><td>a</td><td>b</td></tr></table>"
        "<!-- a comment --></body></html>"
    )
    (doc,) = FileLoader().run(sources=[str(page)])["documents"]
    assert doc.text.splitlines() == [
        "Tuning",
        "Three parameters. M is the number of links; see efSearch.",
        "one",
        "two",
        "lines",
        "code  line 1",
        "code line 2",
        "a",
        "b",
    ]


def test_jsonl_and_csv_fields(tmp_path):
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(
        json.dumps({"_id": "d1", "title": "T1", "text": "first", "year": 2020})
        + "\n"
        + "{broken\n"
        + json.dumps({"_id": "d3", "body": "no text field"})
        + "\n"
    )
    result = FileLoader().run(sources=[str(jsonl)])
    (doc,) = result["documents"]
    assert doc.id == f"{jsonl}#d1"
    assert doc.text == "T1\n\nfirst"
    assert doc.metadata == {
        "source": str(jsonl),
        "doc_id": "d1",
        "line": 1,
        "title": "T1",
        "year": 2020,
    }
    errors = {e["source"]: e["error"] for e in result["errors"]}
    assert errors[f"{jsonl}:2"].startswith("invalid JSON")
    assert "field 'text' is missing" in errors[f"{jsonl}:3"]

    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("id,content,lang\n7,hello csv,en\n")
    loader = FileLoader(text_field="content", metadata_fields=["lang"])
    (doc,) = loader.run(sources=[str(csv_file)])["documents"]
    assert (doc.text, doc.metadata["doc_id"], doc.metadata["lang"]) == ("hello csv", "7", "en")
    bad = FileLoader(text_field="body").run(sources=[str(csv_file)])
    assert "no 'body' column" in bad["errors"][0]["error"]


def write_pdf(path, texts, **encrypt):
    """A PDF with one page per text; ``encrypt``: :meth:`pypdf.PdfWriter.encrypt`'s arguments."""
    pypdf = pytest.importorskip("pypdf")
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = pypdf.PdfWriter()
    for text in texts:
        page = writer.add_blank_page(width=300, height=200)
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
        )
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
    if encrypt:
        writer.encrypt(algorithm="AES-128", **encrypt)
    with path.open("wb") as handle:
        writer.write(handle)


def test_pdf_pages(tmp_path):
    path = tmp_path / "doc.pdf"
    write_pdf(path, ["Page one text", "Page two text"])
    docs = FileLoader().run(sources=[str(path)])["documents"]
    assert [d.metadata["page"] for d in docs] == [1, 2]
    assert "Page two text" in docs[1].text


def test_a_repaired_pdf_loads_with_a_warning_that_names_it_not_bare_pypdf_lines(
    tmp_path, caplog, capfd
):
    import re

    path = tmp_path / "repaired.pdf"
    write_pdf(path, ["Repaired text"])
    # a wrong cross-reference offset: pypdf rebuilds the table and logs why, without the file
    path.write_bytes(re.sub(rb"startxref\s+\d+", b"startxref\n9", path.read_bytes()))
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(path.read_bytes().split(b"xref")[0] + b"startxref\n9\n%%EOF\n")
    with caplog.at_level("WARNING", logger="rag.ingest"):
        result = FileLoader().run(sources=[str(path), str(broken)])
    assert [d.text.strip() for d in result["documents"]] == ["Repaired text"]
    warned = [r.getMessage() for r in caplog.records if r.name == "rag.ingest"]
    assert any(str(path) in m and "startxref" in m for m in warned), warned
    assert [e["source"] for e in result["errors"]] == [str(broken)]
    assert "corrupt or unreadable PDF" in result["errors"][0]["error"]
    assert "startxref" not in capfd.readouterr().err  # nothing printed without a file name
    # files read on several threads at once: each warning names its file, and pypdf's logger
    # propagates again afterwards
    from concurrent.futures import ThreadPoolExecutor

    copies = [tmp_path / f"copy{n}.pdf" for n in range(6)]
    for copy in copies:
        copy.write_bytes(path.read_bytes())
    caplog.clear()
    with caplog.at_level("WARNING", logger="rag.ingest"), ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda p: FileLoader().run(sources=[str(p)]), copies))
    assert all(len(run["documents"]) == 1 for run in runs)
    warned = sorted(r.getMessage().split(":")[0] for r in caplog.records if r.name == "rag.ingest")
    assert warned == sorted(str(copy) for copy in copies)
    assert logging.getLogger("pypdf").propagate


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"   \n", "empty file"),
        ("binary.txt", b"abc\x00def", "binary content"),
        ("latin.txt", "café".encode("latin-1"), "not valid utf-8"),
        ("corrupt.pdf", b"%PDF-1.4 this is not a pdf", "PDF"),
        ("data.xyz", b"text", "unsupported file type"),
    ],
)
def test_bad_files_are_recorded_and_the_run_goes_on(tmp_path, name, content, reason):
    bad = tmp_path / name
    bad.write_bytes(content)
    good = tmp_path / "good.txt"
    good.write_text("fine")
    result = FileLoader().run(sources=[str(bad), str(good)])
    assert [d.text for d in result["documents"]] == ["fine"]
    assert result["errors"][0]["source"] == str(bad)
    assert reason in result["errors"][0]["error"]


def test_unreadable_file(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root can read files without permission bits")
    path = tmp_path / "locked.txt"
    path.write_text("secret")
    path.chmod(0)
    result = FileLoader().run(sources=[str(path)])
    assert "cannot read" in result["errors"][0]["error"]


@pytest.mark.unit
def test_csv_streams_rows_with_multiline_fields_and_reports_bad_input(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text('\ufeffid,text\n1,"first line\nsecond line"\n2,plain\n', encoding="utf-8")
    loader = FileLoader()
    stream = loader.load(str(rows))
    first = next(stream)  # lazily: one row at a time
    assert (first.text, first.metadata["doc_id"]) == ("first line\nsecond line", "1")
    assert [d.text for d in stream] == ["plain"]

    empty = tmp_path / "empty.csv"
    empty.write_text("  \n")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"text\n\x00\x01")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"text\nna\xefve\n")
    result = loader.run(sources=[str(empty), str(binary), str(latin), str(rows)])
    reasons = {e["source"]: e["error"] for e in result["errors"]}
    assert "empty file" in reasons[str(empty)]
    assert "binary" in reasons[str(binary)]
    assert "not valid utf-8 text" in reasons[str(latin)] and "at byte 7" in reasons[str(latin)]
    assert [d.text for d in result["documents"]] == ["first line\nsecond line", "plain"]


def test_a_byte_order_mark_is_no_text(tmp_path):
    bom = b"\xef\xbb\xbf"
    (tmp_path / "rows.jsonl").write_bytes(bom + b'{"id": "a", "text": "Whales sing."}\n')
    (tmp_path / "rows.csv").write_bytes(bom + b"id,text\nb,Krill swarm.\n")
    (tmp_path / "notes.md").write_bytes(bom + b"# Plankton\n\nPlankton drifts.\n")
    result = FileLoader().run(sources=sorted(str(p) for p in tmp_path.iterdir()))
    assert result["errors"] == []
    docs = {d.metadata["source"].rsplit("/", 1)[-1]: d for d in result["documents"]}
    assert (
        docs["rows.jsonl"].text == "Whales sing." and docs["rows.jsonl"].metadata["doc_id"] == "a"
    )
    assert docs["rows.csv"].text == "Krill swarm." and docs["rows.csv"].metadata["doc_id"] == "b"
    assert docs["notes.md"].metadata["title"] == "Plankton"
    assert not any("\ufeff" in d.text for d in result["documents"])


def test_text_in_another_encoding_names_the_line_and_the_fix(tmp_path):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Whales\nsing a café song.\n".encode("cp1252"))
    (error,) = FileLoader().run(sources=[str(latin)])["errors"]
    assert "not valid utf-8 text" in error["error"] and "line 2" in error["error"]
    assert "init_parameters: {encoding: cp1252}" in error["error"]
    (doc,) = FileLoader(encoding="cp1252").run(sources=[str(latin)])["documents"]
    assert doc.text.splitlines() == ["Whales", "sing a café song."]
    with pytest.raises(ConfigError, match="unknown encoding 'latin-9x'"):
        FileLoader(encoding="latin-9x")


def test_an_html_page_in_the_charset_it_declares_loads(tmp_path):
    page = tmp_path / "old.html"
    body = "<p>Caf\u00e9 au lait \u2013 a coffee.</p>"
    page.write_bytes(
        f'<html><head><meta charset="windows-1252"></head><body>{body}</body></html>'.encode(
            "cp1252"
        )
    )
    (doc,) = FileLoader().run(sources=[str(page)])["documents"]
    assert doc.text == "Caf\u00e9 au lait \u2013 a coffee."
    undeclared = tmp_path / "undeclared.html"
    undeclared.write_bytes(f"<html><body>{body}</body></html>".encode("cp1252"))
    (error,) = FileLoader().run(sources=[str(undeclared)])["errors"]
    assert "not valid utf-8 text" in error["error"]


def test_a_csv_field_longer_than_pythons_default_limit_loads(tmp_path):
    long_text = "word " * 40_000  # 200,000 characters; csv's default limit is 131,072
    path = tmp_path / "long.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["id", "text"], ["1", long_text], ["2", "short row"]])
    result = FileLoader().run(sources=[str(path)])
    assert result["errors"] == []
    assert [d.text for d in result["documents"]] == [long_text, "short row"]


def test_markdown_front_matter_becomes_metadata_not_text(tmp_path):
    page = tmp_path / "hnsw.md"
    page.write_text(
        "---\ntitle: Tuning HNSW\ndate: 2024-05-01\ntags: [ann, graph]\ndraft: false\n"
        "weight: 3\nsource: elsewhere\nauthor: {name: Ada}\n---\n## M\n\nM sets the links.\n"
    )
    (doc,) = FileLoader().run(sources=[str(page)])["documents"]
    assert doc.text == "## M\n\nM sets the links.\n"
    meta = doc.metadata
    assert meta["title"] == "Tuning HNSW" and meta["date"] == "2024-05-01"
    assert meta["tags"] == ["ann", "graph"] and meta["draft"] is False and meta["weight"] == 3
    assert meta["source"] == str(page) and "author" not in meta  # ours kept; a mapping left out
    plain = tmp_path / "plain.md"
    plain.write_text("---\nA rule, then a paragraph.\n\n---\n# Title\n")
    (doc,) = FileLoader().run(sources=[str(plain)])["documents"]
    assert doc.text.startswith("---\nA rule") and doc.metadata["title"] == "Title"
    numbered = tmp_path / "numbered.md"
    numbered.write_text("---\ntitle: 2024\n---\nThe year in review.\n")
    (doc,) = FileLoader().run(sources=[str(numbered)])["documents"]
    assert doc.metadata["title"] == "2024"
    empty = tmp_path / "empty.md"
    empty.write_text("---\n---\n# Body\n")
    only = tmp_path / "only.md"
    only.write_text("---\ntitle: Only\n---\n")
    result = FileLoader().run(sources=[str(empty), str(only)])
    assert [d.text for d in result["documents"]] == ["# Body\n"]
    assert result["errors"] == [
        {"source": str(only), "error": "Markdown file has no text after its front matter"}
    ]


def test_a_markdown_title_is_its_first_level_one_heading_outside_code(tmp_path):
    setext = tmp_path / "setext.md"
    setext.write_text("```bash\n# make a venv\n```\n\nHNSW Guide\n==========\n\nText.\n")
    (doc,) = FileLoader().run(sources=[str(setext)])["documents"]
    assert doc.metadata["title"] == "HNSW Guide"


def test_markdown_front_matter_that_is_not_yaml_names_its_line(tmp_path):
    page = tmp_path / "bad.md"
    page.write_text("---\ntitle: HNSW\ntags: [ann, graph\n---\nText.\n")
    good = tmp_path / "good.md"
    good.write_text("# Good\n\nText.\n")
    result = FileLoader().run(sources=[str(page), str(good)])
    (error,) = result["errors"]
    assert error["source"] == str(page)
    assert error["error"].startswith("front matter is not valid YAML (line 4)")
    assert [d.metadata["title"] for d in result["documents"]] == ["Good"]


def test_windows_line_ends_read_as_newlines(tmp_path):
    page = tmp_path / "crlf.md"
    page.write_bytes(
        b"---\r\ntitle: CRLF page\r\n---\r\n# Top\r\n\r\nIntro text\r\n\r\nMore text.\r\n"
    )
    (doc,) = FileLoader().run(sources=[str(page)])["documents"]
    assert doc.text == "# Top\n\nIntro text\n\nMore text.\n"
    assert doc.metadata["title"] == "CRLF page"
    assert [doc.text[a:b] for a, b in sentences(doc.text)] == ["# Top", "Intro text", "More text."]


def test_hidden_files_and_folders_inside_a_directory_are_left_out(tmp_path):
    for name in ("docs/a.md", ".git/objects/x.txt", ".obsidian/notes.md", "docs/.draft.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("# Text\n")
    files, errors = expand_sources([tmp_path])
    assert [Path(f).relative_to(tmp_path).as_posix() for f in files] == ["docs/a.md"]
    assert errors == []
    hidden, _ = expand_sources([tmp_path], include_hidden=True)
    assert len(hidden) == 4
    named, _ = expand_sources([tmp_path / ".obsidian"])  # named itself: read
    assert [Path(f).name for f in named] == ["notes.md"]


def test_a_pdf_restricted_by_an_owner_password_loads_and_one_locked_by_a_user_password_says_so(
    tmp_path,
):
    restricted, locked = tmp_path / "restricted.pdf", tmp_path / "locked.pdf"
    write_pdf(restricted, ["Restricted text"], user_password="", owner_password="owner")
    write_pdf(locked, ["Locked text"], user_password="user", owner_password="owner")
    result = FileLoader().run(sources=[str(restricted), str(locked)])
    assert [d.text for d in result["documents"]] == ["Restricted text"]
    (error,) = result["errors"]
    assert error["source"] == str(locked)
    assert error["error"].startswith("password-protected PDF: it opens only with its password")
