"""Unified social credit codes as published by others, each with where it was read: not made by this project's
validator, so the validator's check can be wrong against them. Only the code and its holder are kept."""

from __future__ import annotations

from typing import NamedTuple


class PublishedUscc(NamedTuple):
    code: str
    holder: str  # the holder the source names; "" where it names none
    source: str


_STDNUM = ("https://github.com/arthurdejong/python-stdnum/blob/1ccbd3c434f5c29de9cc49fe108579efb9ecec7f/"
           "tests/test_cn_uscc.doctest (\"These have been found online\")")
_USCC_UTILS = "https://github.com/ntnyq/uscc-utils/blob/99b48504a1f0db25824315e7e9ebdc18b6e2ee8a/tests/fixtures.ts"
_HUTOOL = ("https://github.com/dromara/hutool/blob/31bdc5130403daa0e79d84dbb6c657a22fadab39/"
           "hutool-core/src/test/java/cn/hutool/core/util/CreditCodeUtilTest.java")
_JINZHONG = ("a 2022 government procurement contract (甲方 晋中市文化和旅游局, 乙方 山西晋韵古建筑有限公司, signed "
             "2022-10-20) quoted in a public GitHub repository; found through the code index's exact-string search, "
             "which does not name the repository")

PUBLISHED_USCCS: tuple[PublishedUscc, ...] = (
    # 1 机构编制 / 1 机关
    PublishedUscc("11140800558745220K", "晋中市文化和旅游局", _JINZHONG),
    # 1 机构编制 / 2 事业单位
    PublishedUscc("121200004013590816", "", _STDNUM),
    # 5 民政 / 2 民办非企业单位, 3 基金会
    PublishedUscc("52410000663412719U", "河南省嵩山少林寺文化院", _USCC_UTILS),
    PublishedUscc("531000005000160090", "中国红十字基金会", _USCC_UTILS),
    # 9 工商 / 1 企业 (an organisation code with a letter: 91620105L015101280, MA… codes since 2015)
    PublishedUscc("91370000728611939A", "山东步长制药股份有限公司", _USCC_UTILS),
    PublishedUscc("91110108551385082Q", "小米科技有限责任公司", _USCC_UTILS),
    PublishedUscc("91140106713678575D", "山西晋韵古建筑有限公司", _JINZHONG),
    PublishedUscc("91310115591693856A", "", _HUTOOL),
    PublishedUscc("91310110666007217T", "", _HUTOOL),
    PublishedUscc("91110000600037341L", "", _STDNUM),
    PublishedUscc("91120224064012553U", "", _STDNUM),
    PublishedUscc("9144030071526726XG", "", _STDNUM),
    PublishedUscc("91620105L015101280", "", _STDNUM),
    PublishedUscc("91340600MA2PBM9HXD", "", _STDNUM),
    # 9 工商 / 2 个体工商户
    PublishedUscc("92340602MA2PBMEM24", "", _STDNUM),
    PublishedUscc("92340621MA2UK3PJXE", "", _STDNUM),
)
