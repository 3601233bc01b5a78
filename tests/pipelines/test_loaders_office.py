"""Office and e-book files through ``loader.files``: tiny files built with the real libraries."""

import zipfile

import pytest

from rag.pipelines.loaders import FileLoader, expand_sources
from rag.pipelines.splitters import RecursiveSplitter

pytestmark = pytest.mark.unit

docx = pytest.importorskip("docx")
pptx = pytest.importorskip("pptx")
openpyxl = pytest.importorskip("openpyxl")
epub = pytest.importorskip("ebooklib.epub")


def make_docx(path):
    document = docx.Document()
    document.core_properties.title = "Handbook"
    document.add_paragraph("Preface text before any heading.")
    document.add_heading("Install", level=1)
    document.add_paragraph("Run pip install ragline.")
    document.add_heading("On Linux", level=2)
    document.add_paragraph("Use a virtual environment.")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("os", "command"), ("linux", "apt install")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Usage", level=1)
    document.add_paragraph("Call rag ingest.")
    document.save(path)


def make_pptx(path):
    presentation = pptx.Presentation()
    for title, body, notes in [
        ("Roadmap", "Ship loaders", "Say loaders twice"),
        ("Results", "Recall went up", ""),
    ]:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    presentation.slides.add_slide(presentation.slide_layouts[6])  # blank: no document
    presentation.save(path)


def make_xlsx(path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Prices"
    sheet.append(["item", "price"])
    sheet.append(["apple", 3])
    sheet.append([None, None])
    sheet.append(["pear", 4.5])
    other = workbook.create_sheet("Notes")
    other["A1"] = "Prices are in euros."
    workbook.create_sheet("Empty")
    workbook.save(path)


def make_epub(path):
    book = epub.EpubBook()
    book.set_identifier("tiny-1")
    book.set_title("Tiny Book")
    book.set_language("en")
    one = epub.EpubHtml(title="One", file_name="one.xhtml", lang="en")
    one.content = (
        "<html><body><h1>Chapter One</h1><p>Whales sing\n<b>long</b>\n  songs.</p>"
        "<h2>Humpbacks</h2><p>Humpbacks migrate.</p><script>var x = 1;</script></body></html>"
    )
    two = epub.EpubHtml(title="Two", file_name="two.xhtml", lang="en")
    two.content = (
        "<html><body><h1>Chapter Two</h1><ul><li>Krill</li><li>Fish</li></ul>"
        "<pre>Plankton\nbloom</pre><table><tr><td>Squid</td><td>Eel</td></tr></table>"
        "</body></html>"
    )
    for item in (one, two):
        book.add_item(item)
    book.toc = (one, two)
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [one, two]
    epub.write_epub(str(path), book)


def test_docx_sections_keep_heading_paths_and_tables(tmp_path):
    path = tmp_path / "handbook.docx"
    make_docx(path)
    result = FileLoader().run(sources=[str(path)])
    assert result["errors"] == []
    docs = result["documents"]
    assert [d.metadata["headers"] for d in docs] == [
        [],
        ["Install"],
        ["Install", "On Linux"],
        ["Usage"],
    ]
    assert [d.metadata["section"] for d in docs][2] == "Install > On Linux"
    assert docs[0].text == "Preface text before any heading."
    assert docs[2].text == "On Linux\nUse a virtual environment.\nos | command\nlinux | apt install"
    assert {d.metadata["title"] for d in docs} == {"Handbook"}
    assert {d.metadata["file_type"] for d in docs} == {"docx"}
    assert len({d.id for d in docs}) == 4
    # chunks inherit the section metadata, whatever splitter is used
    chunks = RecursiveSplitter(chunk_size=20, chunk_overlap=0).run(documents=docs)["chunks"]
    linux = [c for c in chunks if "virtual" in c.text]
    assert linux and linux[0].metadata["section"] == "Install > On Linux"


def test_pptx_one_document_per_slide_with_number_title_and_notes(tmp_path):
    path = tmp_path / "deck.pptx"
    make_pptx(path)
    docs = FileLoader().run(sources=[str(path)])["documents"]
    assert [(d.metadata["slide"], d.metadata["slide_title"]) for d in docs] == [
        (1, "Roadmap"),
        (2, "Results"),
    ]
    assert docs[0].text == "Roadmap\nShip loaders\nNotes: Say loaders twice"
    assert "Notes" not in docs[1].text


def test_xlsx_one_document_per_sheet_rows_as_lines(tmp_path):
    path = tmp_path / "book.xlsx"
    make_xlsx(path)
    docs = FileLoader().run(sources=[str(path)])["documents"]
    assert [(d.metadata["sheet"], d.metadata["sheet_index"]) for d in docs] == [
        ("Prices", 1),
        ("Notes", 2),
    ]
    assert docs[0].text == "item | price\napple | 3\npear | 4.5"
    assert docs[1].text == "Prices are in euros."


def test_epub_sections_per_heading_and_chapter(tmp_path):
    path = tmp_path / "tiny.epub"
    make_epub(path)
    result = FileLoader().run(sources=[str(path)])
    assert result["errors"] == []
    docs = result["documents"]
    assert [(d.metadata["chapter"], d.metadata["section"]) for d in docs] == [
        (1, "Chapter One"),
        (1, "Chapter One > Humpbacks"),
        (2, "Chapter Two"),
    ]
    assert docs[0].text == "Chapter One\nWhales sing long songs."
    assert "var x" not in " ".join(d.text for d in docs)
    assert docs[2].text == "Chapter Two\nKrill\nFish\nPlankton\nbloom\nSquid\nEel"
    assert {d.metadata["title"] for d in docs} == {"Tiny Book"}


def test_directories_pick_up_office_files(tmp_path):
    make_docx(tmp_path / "a.docx")
    make_xlsx(tmp_path / "b.xlsx")
    files, errors = expand_sources([tmp_path])
    assert [f.rsplit("/", 1)[-1] for f in files] == ["a.docx", "b.xlsx"] and errors == []


OLE_HEADER = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504


@pytest.mark.parametrize("suffix", [".docx", ".pptx", ".xlsx"])
def test_encrypted_office_file_is_a_per_file_error(tmp_path, suffix):
    # an encrypted OOXML file is an OLE compound document, not a zip package
    locked = tmp_path / f"locked{suffix}"
    locked.write_bytes(OLE_HEADER + b"EncryptionInfo" + b"\x00" * 512)
    good = tmp_path / "good.txt"
    good.write_text("still loaded")
    result = FileLoader().run(sources=[str(locked), str(good)])
    assert [d.text for d in result["documents"]] == ["still loaded"]
    (error,) = result["errors"]
    assert error["source"] == str(locked)
    assert "password-protected (encrypted)" in error["error"]
    assert "Remove the password" in error["error"]


@pytest.mark.parametrize(
    ("suffix", "make"), [(".docx", make_docx), (".pptx", make_pptx), (".xlsx", make_xlsx)]
)
def test_really_password_protected_office_file(tmp_path, suffix, make):
    # encrypted by msoffcrypto-tool (ECMA-376 agile encryption), as Office does with a password
    ooxml = pytest.importorskip("msoffcrypto.format.ooxml")
    plain = tmp_path / f"plain{suffix}"
    make(plain)
    locked = tmp_path / f"locked{suffix}"
    with plain.open("rb") as source, locked.open("wb") as target:
        ooxml.OOXMLFile(source).encrypt("s3cret", target)
    result = FileLoader().run(sources=[str(locked), str(plain)])
    assert {d.metadata["source"] for d in result["documents"]} == {str(plain)}
    (error,) = result["errors"]
    assert error["source"] == str(locked) and "password-protected" in error["error"]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("truncated.docx", None, "corrupt or unreadable DOCX file"),
        ("garbage.pptx", b"this is not a zip file at all", "corrupt or unreadable PPTX file"),
        ("garbage.xlsx", b"PK\x03\x04 broken zip", "corrupt or unreadable XLSX file"),
        ("garbage.epub", b"not an epub", "corrupt or unreadable EPUB file"),
        ("empty.docx", b"", "empty file"),
    ],
)
def test_corrupt_office_files_are_per_file_errors(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is None:  # a real docx cut in half
        make_docx(tmp_path / "whole.docx")
        whole = (tmp_path / "whole.docx").read_bytes()
        content = whole[: len(whole) // 2]
    path.write_bytes(content)
    good = tmp_path / "good.md"
    good.write_text("# Good\n\nfine")
    result = FileLoader().run(sources=[str(path), str(good)])
    assert [d.metadata["source"] for d in result["documents"]] == [str(good)]
    assert result["errors"][0]["source"] == str(path)
    assert reason in result["errors"][0]["error"]


def test_zip_that_is_not_a_docx_and_a_docx_without_text(tmp_path):
    other = tmp_path / "other.docx"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("hello.txt", "not an office package")
    blank = tmp_path / "blank.docx"
    docx.Document().save(blank)
    result = FileLoader().run(sources=[str(other), str(blank)])
    reasons = {e["source"]: e["error"] for e in result["errors"]}
    assert "corrupt or unreadable DOCX file" in reasons[str(other)]
    assert reasons[str(blank)] == "DOCX file has no text"
    assert result["documents"] == []


def with_chapter_one(path, body):
    """Rewrite the EPUB at ``path`` with ``body`` as chapter one's body (ebooklib would
    re-parse, and so cut, a deeply nested chapter if it wrote it)."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    (name,) = [n for n in entries if n.endswith("one.xhtml")]
    entries[name] = f"<html><body>{body}</body></html>".encode()
    with zipfile.ZipFile(path, "w") as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)


def test_a_deeply_nested_epub_chapter_is_read_whole_or_refused(tmp_path):
    path = tmp_path / "deep.epub"
    make_epub(path)
    with_chapter_one(path, "<div>" * 1500 + "Deep text." + "</div>" * 1500 + "<p>After.</p>")
    result = FileLoader().run(sources=[str(path)])
    assert result["errors"] == []
    assert result["documents"][0].text == "Deep text.\nAfter."  # libxml2 stopped at level 256
    with_chapter_one(path, "<div>" * 3000 + "Deep text." + "</div>" * 3000)
    (error,) = FileLoader().run(sources=[str(path)])["errors"]
    assert "chapter 1 (one.xhtml) nests its elements deeper than 2048 levels" in error["error"]


def test_drm_encrypted_epub_is_refused(tmp_path):
    path = tmp_path / "drm.epub"
    make_epub(path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(
            "META-INF/encryption.xml",
            '<encryption><EncryptedData><EncryptionMethod Algorithm="http://www.w3.org/2001/'
            '04/xmlenc#aes128-cbc"/></EncryptedData></encryption>',
        )
    (error,) = FileLoader().run(sources=[str(path)])["errors"]
    assert error["source"] == str(path) and "DRM-encrypted EPUB" in error["error"]


@pytest.mark.integration
def test_ingest_office_files_with_the_semantic_splitter_keeps_metadata_and_errors(
    tmp_path, embedder
):
    from rag.connectors.stores.faiss import FaissStore
    from rag.core.pipeline import Pipeline
    from rag.pipelines.ingest import run_ingest
    from rag.pipelines.splitters import SemanticSplitter
    from rag.pipelines.writer import StoreWriter

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    make_docx(corpus / "handbook.docx")
    make_pptx(corpus / "deck.pptx")
    make_xlsx(corpus / "book.xlsx")
    make_epub(corpus / "tiny.epub")
    (corpus / "locked.docx").write_bytes(OLE_HEADER)
    store = FaissStore(path=str(tmp_path / "index"))
    pipeline = Pipeline("ingest")
    pipeline.add_component("loader", FileLoader())
    pipeline.add_component(
        "splitter",
        SemanticSplitter(embedder=embedder, chunk_size=64, tokenizer="all-MiniLM-L6-v2"),
    )
    pipeline.add_component("embedder", embedder)
    pipeline.add_component("writer", StoreWriter(store=store))
    report = run_ingest(pipeline, [corpus], progress=False)
    assert report.sources == 5
    (error,) = report.errors
    assert error["source"].endswith("locked.docx") and "password-protected" in error["error"]
    stored = list(store.iter_chunks())
    by_type = {}
    for chunk in stored:
        by_type.setdefault(chunk.metadata["file_type"], []).append(chunk.metadata)
    assert set(by_type) == {"docx", "pptx", "xlsx", "epub"}
    assert {m["section"] for m in by_type["docx"]} >= {"Install > On Linux", "Usage"}
    assert {m["slide"] for m in by_type["pptx"]} == {1, 2}
    assert {m["sheet"] for m in by_type["xlsx"]} == {"Prices", "Notes"}
    assert {m["chapter"] for m in by_type["epub"]} == {1, 2}
    again = run_ingest(pipeline, [corpus], progress=False)  # unchanged: nothing re-embedded
    assert again.chunks_written == 0 and again.chunks_skipped == len(stored)


@pytest.mark.parametrize(
    ("suffix", "module", "package"),
    [(".docx", "docx", "python-docx"), (".epub", "ebooklib", "ebooklib")],
)
def test_missing_library_names_the_extra_instead_of_blaming_the_file(
    tmp_path, monkeypatch, suffix, module, package
):
    import sys

    from rag.core.errors import MissingDependencyError

    path = tmp_path / f"a{suffix}"
    (make_docx if suffix == ".docx" else make_epub)(path)
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=rf"'{package}'.*ragline\[office\]"):
        FileLoader().run(sources=[str(path)])
