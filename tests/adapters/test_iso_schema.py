"""XSD validation and the envelope-tolerant reader: errors name element, line and reason."""

import pytest

from adapters.errors import MalformedMessageError, SchemaValidationError, UnsupportedMessageError
from adapters.iso20022 import schema
from adapters.iso20022.document import read_document
from iso_samples import SAMPLES, sample


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.xml")), ids=lambda path: path.name)
def test_every_sample_is_valid_against_its_schema(path):
    document = read_document(path.read_bytes(), tuple(sorted(schema.MESSAGE_DEFINITIONS)))
    assert path.name.startswith(document.message_definition)


def test_schemas_come_from_shared_data_and_are_cached(shared_data):
    assert schema.xsd_directory().resolve() == (shared_data / "iso20022" / "xsd").resolve()
    assert schema.load_schema("pacs.008.001.08") is schema.load_schema("pacs.008.001.08")


def test_invalid_value_names_element_line_and_reason():
    data = sample("pacs.008.001.08_sample.xml").replace(b"<ChrgBr>SLEV", b"<ChrgBr>XXXX")
    with pytest.raises(SchemaValidationError) as caught:
        schema.parse_validated(data, "pacs.008.001.08")
    assert caught.value.element == "ChrgBr" and caught.value.line == 28
    assert str(caught.value) == (
        "ChrgBr (line 28): [facet 'enumeration'] The value 'XXXX' is not an element of the "
        "set {'DEBT', 'CRED', 'SHAR', 'SLEV'}. (pacs.008.001.08)")


def test_missing_element_names_where_it_was_expected():
    data = sample("pacs.008.001.08_sample.xml").replace(b"<NbOfTxs>1</NbOfTxs>", b"")
    with pytest.raises(SchemaValidationError,
                       match=r"^SttlmInf \(line 7\): This element is not expected. "
                             r"Expected is one of \( BtchBookg, NbOfTxs \)"):
        schema.parse_validated(data, "pacs.008.001.08")


@pytest.mark.parametrize("data, message", [
    (b"<Doc:Document/>", "Namespace prefix Doc on Document is not defined"),
    (b"<a>", "not well-formed"),
    (b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "DOCTYPE is not allowed"),
    (b"", "not well-formed"),
    (b"\xff\xfe<a/>", "not well-formed"),
])
def test_malformed_input_is_refused_clearly(data, message):
    with pytest.raises(MalformedMessageError, match=message):
        read_document(data, ("pacs.002.001.10",))


def test_unsupported_definition_is_refused():
    with pytest.raises(UnsupportedMessageError, match="pacs.002.001.03"):
        schema.load_schema("pacs.002.001.03")


def test_envelope_without_iso_document_is_refused():
    with pytest.raises(MalformedMessageError, match="no ISO 20022 Document"):
        read_document(b'<Envelope xmlns="urn:x"><Document/></Envelope>', ("pacs.002.001.10",))


def test_two_documents_are_refused():
    document = sample("pacs.002.001.10_sample.xml").decode()
    data = f"<Batch>{document}{document}</Batch>".encode()
    with pytest.raises(MalformedMessageError, match="more than one"):
        read_document(data, ("pacs.002.001.10",))
