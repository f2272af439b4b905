"""Partner bodies into data: charsets (GBK above all) and the XML → dict convention SOAP adapters follow."""

from __future__ import annotations

import pytest

from mapping.payload import PayloadError, decode_body, parse_json_body, xml_records

ORDER = """<?xml version="1.0" encoding="{encoding}"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <soap:Body>
    <GetPendingOrdersResponse xmlns="http://12345.guizhou.gov.cn/ws/order">
      <GetPendingOrdersResult>
        <order>
          <infoid>GZ12345-20240326-000076</infoid>
          <visitorname>邰秀兰</visitorname>
          <limitdays>5</limitdays>
          <objectcode>无</objectcode>
          <idcard xsi:nil="true"/>
          <ispub></ispub>
          <attachments>
            <file><url>https://12345.example.cn/1.jpg</url></file>
            <file><url>https://12345.example.cn/2.jpg</url></file>
          </attachments>
          <visitor><address>从江县丙妹镇大塘村三组</address></visitor>
        </order>
        <order><infoid>GZ12345-20240326-000077</infoid></order>
      </GetPendingOrdersResult>
    </GetPendingOrdersResponse>
  </soap:Body>
</soap:Envelope>
"""


def test_gbk_is_decoded_when_the_content_type_says_so() -> None:
    text = "邰秀兰投诉电动车电池鼓包"
    assert decode_body(text.encode("gbk"), "application/json; charset=GBK") == text


def test_a_gbk_body_may_hold_characters_only_gb18030_has() -> None:
    # Partners labelled "GBK" really send GB18030: 𠮷 (U+20BB7) has no GBK code.
    assert decode_body("𠮷野家".encode("gb18030"), "text/plain; charset=gbk") == "𠮷野家"


def test_an_xml_declaration_names_the_encoding_when_the_header_does_not() -> None:
    body = '<?xml version="1.0" encoding="GB2312"?><order><visitorname>吴志刚</visitorname></order>'.encode("gb2312")
    assert "吴志刚" in decode_body(body, "text/xml")


def test_utf8_is_the_default_and_its_byte_order_mark_is_dropped() -> None:
    assert parse_json_body(b"\xef\xbb\xbf" + '{"contactName": "王小红"}'.encode()) == {"contactName": "王小红"}


def test_bytes_that_are_not_the_declared_charset_are_an_error() -> None:
    with pytest.raises(PayloadError, match="not valid UTF-8"):
        decode_body("龙梅".encode("gbk"), "application/json")


def test_an_unknown_charset_is_an_error() -> None:
    with pytest.raises(PayloadError, match="unknown charset"):
        decode_body(b"{}", "application/json; charset=klingon")


@pytest.mark.parametrize("encoding", ["GBK", "UTF-8"])
def test_each_order_of_a_soap_response_becomes_a_dict(encoding: str) -> None:
    first, second = xml_records(ORDER.format(encoding=encoding).encode(encoding), "text/xml", "order")
    assert first == {
        "infoid": "GZ12345-20240326-000076",
        "visitorname": "邰秀兰",
        "limitdays": "5",
        "objectcode": "无",
        "idcard": None,
        "ispub": None,
        "attachments": {"file": [{"url": "https://12345.example.cn/1.jpg"}, {"url": "https://12345.example.cn/2.jpg"}]},
        "visitor": {"address": "从江县丙妹镇大塘村三组"},
    }
    assert second == {"infoid": "GZ12345-20240326-000077"}


def test_a_single_child_stays_a_single_value() -> None:
    body = b"<order><attachments><file><url>https://12345.example.cn/1.jpg</url></file></attachments></order>"
    assert xml_records(body, "text/xml", "order") == [
        {"attachments": {"file": {"url": "https://12345.example.cn/1.jpg"}}}
    ]


def test_a_doctype_is_refused() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE order [<!ENTITY x "boom">]><order><infoid>&x;</infoid></order>'
    with pytest.raises(PayloadError, match="DOCTYPE"):
        xml_records(body, "text/xml", "order")


def test_xml_that_is_not_well_formed_is_an_error() -> None:
    with pytest.raises(PayloadError, match="not well-formed"):
        xml_records(b"<order><infoid>1</order>", "text/xml", "order")
