"""Field errors in Chinese for the people who read them (partner systems, operators): the field's name and the broken
rule in words. The machine-readable `rule` stays as it is, and the English message stays for logs."""

from __future__ import annotations

import re

# The national ticket's fields as the 12315 data standard names them; a path is named by its longest known prefix.
FIELD_NAMES: dict[str, str] = {
    "(ticket)": "工单",
    "schema_version": "数据标准版本",
    "ticket_id": "工单编号",
    "idempotency_key": "幂等键",
    "national_registration_no": "全国登记号",
    "source": "来源信息",
    "source.source_system": "来源系统",
    "source.adapter_id": "对接系统",
    "source.source_ticket_no": "来源工单号",
    "source.related_ticket_nos": "关联工单号",
    "source.source_received_at": "来源受理时间",
    "source.source_version": "来源工单版本",
    "follow_up": "后续（补充材料、催办、撤诉）",
    "follow_up.source_ticket_no": "后续所指的来源工单号",
    "follow_up.at": "后续时间",
    "follow_up.text": "后续内容",
    "follow_up.version": "补充材料版本",
    "follow_up.reference": "后续编号",
    "follow_up.requested_by": "经办人",
    "source.source_deadline": "来源办理时限",
    "classification": "分类",
    "classification.business_type": "业务类型",
    "classification.channel": "来源渠道",
    "classification.origin_hotline": "来源热线",
    "classification.urgency": "紧急程度",
    "registration": "登记信息",
    "registration.registered_at": "登记时间",
    "registration.registering_org_code": "登记机构代码",
    "registration.title": "标题",
    "registration.content": "诉求内容",
    "registration.request": "投诉请求",
    "registration.keywords": "关键词",
    "complainant": "投诉举报人",
    "complainant.name": "投诉举报人姓名",
    "complainant.phone": "投诉举报人联系电话",
    "complainant.address": "投诉举报人地址",
    "complainant.gender": "投诉举报人性别",
    "complainant.id_type": "证件类型",
    "complainant.id_number": "证件号码",
    "complainant.anonymous": "是否匿名",
    "complainant.confidential": "是否保密",
    "complainant.region_code": "投诉举报人所在地区划",
    "complainant.agent": "代理人",
    "respondent": "被投诉举报对象",
    "respondent.name": "被投诉举报对象名称",
    "respondent.uscc": "统一社会信用代码",
    "respondent.registration_no": "注册号",
    "respondent.org_code": "组织机构代码",
    "respondent.entity_type_code": "主体类型",
    "respondent.industry_code": "行业分类",
    "respondent.operating_address": "经营地址",
    "respondent.operating_region_code": "经营地行政区划",
    "respondent.online_platform": "网络交易平台",
    "subject": "涉及客体",
    "subject.object_category_code": "客体分类",
    "subject.goods_name": "商品或服务名称",
    "subject.brand": "品牌",
    "subject.model_spec": "规格型号",
    "subject.quantity": "数量",
    "subject.amount": "涉及金额",
    "subject.purchase_method": "购买方式",
    "subject.order_no": "订单号",
    "subject.dispute_date": "争议发生日期",
    "problem": "问题信息",
    "problem.question_category_code": "问题分类",
    "problem.suspected_violation": "涉嫌违法行为",
    "problem.tort_type_code": "侵权类型",
    "occurrence": "发生信息",
    "occurrence.occurred_at": "发生时间",
    "occurrence.incident_region_code": "发生地行政区划",
    "occurrence.incident_address": "发生地址",
    "routing": "分派信息",
    "routing.jurisdiction": "受理范围",
    "routing.handler_org_code": "承办机构",
    "lifecycle": "办理状态",
    "lifecycle.status": "状态",
    "lifecycle.not_accepted_reason": "不予受理原因",
    "attachments": "附件",
    "status": "状态",
    "body": "请求体",
}

# Rules in words; `{n}` is the number found in the English message (a length, a limit), when there is one.
RULE_WORDS: dict[str, str] = {
    "missing": "必须填写",
    "unknown_ticket": "网关没有这张工单：补充材料、催办、撤诉须针对已转来的工单",
    "required": "必须填写",
    "string_too_long": "超过长度上限（最多 {n} 个字符）",
    "string_too_short": "内容过短（至少 {n} 个字符）",
    "too_long": "条目过多（最多 {n} 项）",
    "too_short": "条目过少（至少 {n} 项）",
    "string_pattern_mismatch": "格式不正确",
    "string_type": "应为文本",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "float_parsing": "应为数字",
    "decimal_parsing": "应为数字",
    "bool_parsing": "应为是或否（true/false）",
    "bool_type": "应为是或否（true/false）",
    "greater_than": "数值过小（须大于 {n}）",
    "greater_than_equal": "数值过小（须不小于 {n}）",
    "less_than": "数值过大（须小于 {n}）",
    "less_than_equal": "数值过大（须不大于 {n}）",
    "literal_error": "取值不在允许范围内",
    "enum": "取值不在允许范围内",
    "date_parsing": "日期格式不正确",
    "date_from_datetime_parsing": "日期格式不正确",
    "datetime_parsing": "时间格式不正确",
    "datetime_from_date_parsing": "时间格式不正确",
    "timezone_aware": "时间须带时区（如 +08:00）",
    "extra_forbidden": "不是可接受的字段",
    "model_type": "应为对象",
    "dict_type": "应为对象",
    "list_type": "应为列表",
    "object_expected": "应为对象",
    "value_error": "取值无效",
    "invalid_value": "取值无效",
    "invalid_text": "应为文本",
    "control_character": "含有不允许的控制字符{u}",
    "invalid_number": "应为数字",
    "invalid_money": "金额格式不正确",
    "invalid_date": "日期格式不正确",
    "invalid_datetime": "时间格式不正确",
    "invalid_phone": "不是有效的电话号码",
    "invalid_resident_id": "不是有效的居民身份证号码",
    "invalid_uscc": "不是有效的统一社会信用代码",
    "invalid_registration_no": "不是有效的注册号",
    "invalid_org_code": "不是有效的组织机构代码",
    "invalid_region_code": "不是现行 GB/T 2260 行政区划代码",
    "invalid_region_name": "无法识别的行政区划名称",
    "unmapped_code": "代码不在对照表中，无法对应国家标准代码",
    "unmapped_value": "取值不在对照表中",
    "unknown_code": "不是国家代码表中的代码",
    "category_levels": "分类层级不正确",
    "complaint_requires": "投诉件必须填写",
    "complaint_not_anonymous": "投诉件不能匿名",
    "refusal_has_reason": "不予受理须写明原因",
    "reporter_confidential": "举报人身份须保密",
    "idempotency_key_matches_source": "与来源工单不一致",
    "gateway_owned": "由网关填写，来件不得提供",
    "adapter_mismatch": "与对接系统不一致",
    "internal": "网关内部错误，请稍后重试",
    "json_invalid": "不是有效的 JSON",
    "invalid_json": "不是有效的 JSON",
    "enum_value": "取值不在允许范围内",
}

# Rules with a variable part after a colon.
PREFIX_WORDS: dict[str, str] = {
    "returned": "不属于市场监管部门受理范围，已退单（不予受理原因 {code}）",
    "jurisdiction": "受理范围判定（规则 {code}）",
}

_INDEX = re.compile(r"\[\d+\]")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")
_CODE_POINT = re.compile(r"U\+[0-9A-Fa-f]{4,6}")
# pydantic's value_error carries the validator's own sentence; these say what it was about.
_VALUE_ERRORS = (("control character", "control_character"),)


def field_name(field: str) -> str:
    """The Chinese name of a dotted field path (list indices ignored), by its longest known prefix."""
    path = _INDEX.sub("", field)
    probe = path
    while probe:
        if probe in FIELD_NAMES:
            rest = path[len(probe):].lstrip(".")
            return FIELD_NAMES[probe] + (f"（{rest}）" if rest else "")
        probe = probe.rpartition(".")[0]
    return field


def rule_words(rule: str, message: str = "") -> str:
    """The broken rule in Chinese; a rule not known here is named by its code."""
    head, _, code = rule.partition(":")
    if code and head in PREFIX_WORDS:
        return PREFIX_WORDS[head].format(code=code)
    if rule == "value_error":
        rule = next((named for phrase, named in _VALUE_ERRORS if phrase in message), rule)
    words = RULE_WORDS.get(rule)
    if words is None:
        return f"不符合规则 {rule}"
    if "{u}" in words:  # the character named as the English names it, U+001B
        found = _CODE_POINT.search(message)
        return words.format(u=f"（{found.group(0)}）" if found else "")
    if "{n}" in words:
        found = _NUMBER.search(message)
        return words.format(n=found.group(1)) if found else words.split("（")[0]
    return words


def chinese_message(field: str, rule: str, message: str = "") -> str:
    """One field error in Chinese: 「业务类型：代码不在对照表中，无法对应国家标准代码」."""
    words = rule_words(rule, message)
    if rule.startswith("jurisdiction:") and message:
        return f"{words}：{message}"
    if rule.startswith("returned:") and message:  # the spec's or the screen's reason, written for the partner
        return f"已退单（不予受理原因 {rule.partition(':')[2]}）：{message}"
    return f"{field_name(field)}：{words}"
