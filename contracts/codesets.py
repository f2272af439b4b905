"""Fixed national code sets as enums; labels, versions and crosswalks live in the code-table files."""

from enum import StrEnum


class BusinessType(StrEnum):
    ENQUIRY = "01"  # 咨询
    COMPLAINT = "02"  # 投诉
    REPORT = "03"  # 举报


class Channel(StrEnum):
    PHONE = "01"  # 电话
    INTERNET = "02"  # 互联网
    WECHAT = "03"  # 微信
    APP = "04"  # APP
    LETTER = "05"  # 来信
    VISIT = "06"  # 来访
    FAX = "07"  # 传真
    SMS = "08"  # 短信
    HOTLINE_12345 = "09"  # 12345转办
    OTHER_DEPARTMENT = "10"  # 其他部门转办
    SUPERIOR = "11"  # 上级交办
    NATIONAL_PLATFORM = "12"  # 全国12315平台转件
    OTHER = "99"  # 其他


class OriginHotline(StrEnum):
    H12315 = "12315"
    H12365 = "12365"
    H12331 = "12331"
    H12358 = "12358"
    H12330 = "12330"
    H12345 = "12345"
    NONE = "none"


class Urgency(StrEnum):
    CRITICAL = "1"  # 特急
    URGENT = "2"  # 加急
    PRIORITY = "3"  # 平急
    ROUTINE = "4"  # 常规


class Status(StrEnum):
    RECEIVED = "RECEIVED"
    DISPATCHED = "DISPATCHED"
    ACCEPTED = "ACCEPTED"
    NOT_ACCEPTED = "NOT_ACCEPTED"
    MEDIATING = "MEDIATING"
    MEDIATED = "MEDIATED"
    MEDIATION_TERMINATED = "MEDIATION_TERMINATED"
    FILED = "FILED"
    NOT_FILED = "NOT_FILED"
    EXTENDED = "EXTENDED"
    RETURNED = "RETURNED"
    TRANSFERRED_OUT = "TRANSFERRED_OUT"
    WITHDRAWN = "WITHDRAWN"
    CLOSED = "CLOSED"


class NotAcceptedReason(StrEnum):
    NOT_MARKET_SUPERVISION = "1"
    NO_AUTHORITY = "2"
    ALREADY_HANDLED = "3"
    NOT_CONSUMPTION_OR_NO_DISPUTE = "4"
    OVER_THREE_YEARS = "5"
    MISSING_MATERIALS = "6"
    OTHER = "7"


class Satisfaction(StrEnum):
    SATISFIED = "01"
    FAIRLY_SATISFIED = "02"
    DISSATISFIED = "03"


class CoordinateSystem(StrEnum):
    WGS84 = "WGS84"
    GCJ02 = "GCJ02"
    CGCS2000 = "CGCS2000"


class IdType(StrEnum):
    RESIDENT_ID = "01"  # 居民身份证
    PASSPORT = "02"
    HK_MACAO_PERMIT = "03"
    TAIWAN_PERMIT = "04"
    FOREIGN_PERMANENT_RESIDENT = "05"
    OTHER = "99"


class Gender(StrEnum):
    UNKNOWN = "0"
    MALE = "1"
    FEMALE = "2"
    UNSTATED = "9"


class HandlerLevel(StrEnum):
    NATION = "NATION"
    PROVINCE = "PROVINCE"
    CITY = "CITY"
    COUNTY = "COUNTY"
    STATION = "STATION"
