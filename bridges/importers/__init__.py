"""Pure parsers from other messengers' export files to one common model.

Every parser is a function ``bytes -> ImportedExport`` without I/O; the only
exception type they raise for bad input is ``ImportFormatError``.
``parse_export`` detects the format and dispatches.
"""

from bridges.importers.detect import SUPPORTED, detect_format, parse_export
from bridges.importers.errors import ImportFormatError
from bridges.importers.google_csv import parse_google_csv
from bridges.importers.limits import DEFAULT_LIMITS, ImportLimits
from bridges.importers.model import FORMATS, Contact, Group, ImportedExport, Member
from bridges.importers.phones import normalise_phone
from bridges.importers.telegram import parse_telegram
from bridges.importers.vcard import parse_vcard
from bridges.importers.wechat import parse_wechat_contacts_csv, parse_wechat_json
from bridges.importers.whatsapp import parse_whatsapp

__all__ = [
    "DEFAULT_LIMITS",
    "FORMATS",
    "SUPPORTED",
    "Contact",
    "Group",
    "ImportFormatError",
    "ImportLimits",
    "ImportedExport",
    "Member",
    "detect_format",
    "normalise_phone",
    "parse_export",
    "parse_google_csv",
    "parse_telegram",
    "parse_vcard",
    "parse_wechat_contacts_csv",
    "parse_wechat_json",
    "parse_whatsapp",
]
