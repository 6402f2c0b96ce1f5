from shopfloor_st import source_revision


def test_revision_ignores_line_ends_trailing_blanks_and_blank_edges() -> None:
    a = "PROGRAM Main\n  x := 1;\nEND_PROGRAM\n"
    b = "\n\r\nPROGRAM Main   \r\n  x := 1;\t\r\nEND_PROGRAM\r\n\r\n\n"
    assert source_revision(a) == source_revision(b)
    assert source_revision(a).startswith("sha256:")
    assert len(source_revision(a)) == len("sha256:") + 64


def test_revision_changes_with_content_and_leading_indent() -> None:
    a = "PROGRAM Main\n  x := 1;\nEND_PROGRAM"
    assert source_revision(a) != source_revision(a.replace("1", "2"))
    assert source_revision(a) != source_revision(a.replace("  x", "x"))


def test_revision_of_known_text() -> None:
    # sha256 of "abc"
    assert source_revision("  \nabc  \n\n") == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
