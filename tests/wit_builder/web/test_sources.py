"""The three collections are read completely and exactly: counts checked against the raw files by other means."""

import re

from wit_builder.paths import debian_path
from wit_builder.web import sources


def test_openclipart_metadata_takes_the_works_title_not_the_publishers():
    svg = (
        b'<svg><metadata><rdf:RDF xmlns:cc="http://web.resource.org/cc/" '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<cc:Work rdf:about=""><dc:title>Red apple</dc:title><dc:description>A shiny fruit</dc:description>'
        b"<dc:subject><rdf:Bag><rdf:li>apple</rdf:li><rdf:li> </rdf:li><rdf:li>fruit</rdf:li></rdf:Bag></dc:subject>"
        b"<dc:publisher><cc:Agent><dc:title>Some Author</dc:title></cc:Agent></dc:publisher></cc:Work>"
        b"</rdf:RDF></metadata></svg>"
    )
    assert sources.read_openclipart_metadata(svg) == ("Red apple", "A shiny fruit", ["apple", "fruit"])
    assert sources.read_openclipart_metadata(b"<svg></svg>") is None
    assert sources.read_openclipart_metadata(b"<rdf:RDF><broken</rdf:RDF>") is None


def test_tuxpaint_text_first_line_is_english_then_one_pair_per_language():
    text = "A frog.\nde.utf8=Ein Frosch.\npt_BR.utf8=Um sapo.\nca@valencia.utf8=Una granota.\n\nnot a language line\n"
    assert sources.parse_tuxpaint_text(text) == [
        ("en", "A frog."),
        ("de", "Ein Frosch."),
        ("pt_BR", "Um sapo."),
        ("ca@valencia", "Una granota."),
    ]
    assert sources.parse_tuxpaint_text("fr.utf8=Une grenouille.") == [("fr", "Une grenouille.")]


def test_emoji_test_lines_carry_name_group_and_subgroup():
    text = (
        "# group: Animals & Nature\n# subgroup: animal-mammal\n"
        "1F415                                                  ; fully-qualified     # 🐕 E0.7 dog\n"
        "1F415 200D 1F9BA                                       ; fully-qualified     # 🐕‍🦺 E12.0 service dog\n"
        "263A                                                   ; unqualified         # ☺ E0.6 smiling face\n"
    )
    assert list(sources.parse_emoji_test(text)) == [
        ("1f415", "🐕", "dog", "Animals & Nature: animal-mammal"),
        ("1f415_200d_1f9ba", "🐕‍🦺", "service dog", "Animals & Nature: animal-mammal"),
    ]


def test_every_openclipart_png_is_read_with_its_metadata():
    png_root = sources.openclipart_root()
    pngs = list(png_root.rglob("*.png"))
    records = list(sources.openclipart())
    assert len(records) == len(pngs) == 8121
    svg_root = debian_path("usr/share/openclipart/svg", "openclipart-svg")
    with_keywords = 0
    for png in pngs:
        svg = (svg_root / png.relative_to(png_root)).with_suffix(".svg").read_text("utf-8", "replace")
        work = svg[svg.find("<cc:Work") : svg.find("</cc:Work>")]
        subject = work[work.find("<dc:subject>") : work.find("</dc:subject>")]
        with_keywords += any(li.strip() for li in re.findall(r"<rdf:li>(.*?)</rdf:li>", subject, re.S))
    kinds = [source for r in records for source, _ in r.texts]
    assert kinds.count("openclipart/title") == kinds.count("openclipart/description") == 8121
    assert kinds.count("openclipart/keywords") == with_keywords


def test_every_tuxpaint_language_line_is_a_pair():
    root = debian_path("usr/share/tuxpaint/stamps", "tuxpaint-stamps-default")
    expected = 0
    for txt in root.rglob("*.txt"):
        if not (txt.with_suffix(".png").exists() or txt.with_suffix(".svg").exists()):
            continue
        lines = txt.read_bytes().decode("utf-8", "replace").splitlines()
        expected += sum(".utf8=" in line for line in lines)
        expected += bool(lines and lines[0].strip() and ".utf8=" not in lines[0])
    pairs = sum(len(r.texts) for r in sources.tuxpaint())
    assert pairs == expected > 60_000


def test_every_fully_qualified_emoji_is_listed_once():
    path = debian_path("usr/share/unicode/emoji/emoji-test.txt", "unicode-data")
    lines = [x for x in path.read_text("utf-8").splitlines() if "; fully-qualified" in x and not x.startswith("#")]
    records = list(sources.emoji())
    assert len(records) == len(lines) == len({r.image_id for r in records})
    assert all([s for s, _ in r.texts] == ["emoji/name", "emoji/group"] for r in records)
