import base64

import pytest

from onemetal.errors import InputError
from onemetal.opennebula import payload


def test_base64_with_the_heredoc_newline_decodes():
    assert payload.decode_base64(base64.b64encode(b"<VM/>").decode() + "\n") == b"<VM/>"


@pytest.mark.parametrize("text", ["not base64!", "PFZNLz", "", "   \n"])
def test_bad_base64_is_refused_naming_the_field(text):
    with pytest.raises(InputError, match="^stdin: "):
        payload.decode_base64(text, "stdin")


def test_plain_and_base64_xml_give_the_same_document():
    xml = "<VM><ID>7</ID></VM>"
    plain = payload.read_payload(xml)
    encoded = payload.read_payload(base64.b64encode(xml.encode()).decode() + "\n")
    assert plain.findtext("ID") == encoded.findtext("ID") == "7"


def test_malformed_xml_is_refused():
    with pytest.raises(InputError, match="malformed XML"):
        payload.read_payload("<VM><ID>1</VM>")


def test_wrong_root_is_refused():
    with pytest.raises(InputError, match="expected a <VM> document, got <HOST>"):
        payload.read_payload("<HOST/>", root="VM")


def test_entities_are_not_expanded_and_doctype_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE VM [<!ENTITY x SYSTEM "file://{secret}">]>'
           "<VM><ID>&x;</ID></VM>")
    with pytest.raises(InputError, match="DOCTYPE"):
        payload.read_payload(xxe)
    laughs = ('<!DOCTYPE VM [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
              "<VM><ID>&b;</ID></VM>")
    with pytest.raises(InputError):
        payload.read_payload(laughs)


def test_oversized_payload_is_refused():
    big = "<VM>" + "<X>y</X>" * (payload.MAX_XML_BYTES // 8 + 1) + "</VM>"
    with pytest.raises(InputError, match="larger than"):
        payload.read_payload(big)


def test_a_doctype_after_comments_and_an_undefined_entity_are_refused():
    with pytest.raises(InputError, match="DOCTYPE"):
        payload.read_payload('<?xml version="1.0"?><!-- hi --><!DOCTYPE VM SYSTEM "http://x/y.dtd"><VM/>')
    with pytest.raises(InputError, match="malformed XML"):
        payload.read_payload("<VM><ID>&x;</ID></VM>")
    with pytest.raises(InputError, match="malformed XML"):
        payload.read_payload("<VM/><!DOCTYPE VM>")


def test_predefined_entities_cdata_and_encodings_read_as_text_without_comments():
    root = payload.read_payload('<?xml version="1.0" encoding="ISO-8859-1"?>'.encode()
                                + b"<VM><!-- c --><?pi x?><A>&lt;&amp;\xe9</A>"
                                  b"<B><![CDATA[<!DOCTYPE x>]]></B></VM>")
    assert [(e.tag, e.text) for e in root] == [("A", "<&\u00e9"), ("B", "<!DOCTYPE x>")]


def test_the_host_tree_reads_as_lxml_reads_the_same_document():
    from lxml import etree

    xml = (b"<VM><ID> 7 </ID><T><NIC><IP>1</IP></NIC><NIC><IP>2</IP></NIC></T><T><NIC><IP>3</IP>"
           b"</NIC></T><E/><M>before<X/>after</M><A k='v'>x</A></VM>")
    ours, theirs = payload.parse_xml(xml), etree.fromstring(xml)
    for path in ("ID", "T/NIC/IP", "T/NIC", "E", "M", "A", "missing", "T/missing"):
        assert [(e.tag, e.text, len(e)) for e in ours.findall(path)] == \
            [(e.tag, e.text, len(e)) for e in theirs.findall(path)], path
        assert ours.findtext(path) == theirs.findtext(path), path
        assert (ours.find(path) is None) == (theirs.find(path) is None), path
    assert ours.findtext("missing", "d") == "d" and ours.find("A").get("k") == "v"
    with pytest.raises(ValueError, match="plain tags"):
        ours.findall(".//NIC")


def test_a_doctype_far_into_the_prolog_and_a_billion_laughs_are_refused():
    late = b"<?xml version='1.0'?><!--" + b"x" * 100_000 + b"--><!DOCTYPE VM><VM/>"
    with pytest.raises(InputError, match="DOCTYPE"):
        payload.parse_xml(late)
    laughs = (b'<!DOCTYPE VM [' + b"".join(b'<!ENTITY e%d "%s">' % (i, b"&e%d;" % (i - 1) * 10 if i else b"x" * 10)
                                           for i in range(10)) + b"]><VM>" + b"&e9;" * 100_000 + b"</VM>")
    with pytest.raises(InputError, match="DOCTYPE"):
        payload.parse_xml(laughs)


def test_deeply_nested_xml_is_refused():
    deep = "<VM>" + "<A>" * 300 + "x" + "</A>" * 300 + "</VM>"
    with pytest.raises(InputError, match="nested deeper than 256 levels"):
        payload.read_payload(deep)
    fine = "<VM>" + "<A>" * 200 + "x" + "</A>" * 200 + "</VM>"
    assert payload.read_payload(fine).tag == "VM"
