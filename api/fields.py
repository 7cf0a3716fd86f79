"""Field types shared by the features' schemas."""
from __future__ import annotations

import copy
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from routing import numbers

ENTITY_ID = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$",
                            error="must be 1-64 characters: letters, digits, _ . @ + - "
                                  "(starting with a letter or digit)")
EXTENSION = validate.Regexp(r"^[0-9]{2,6}$", error="must be an extension of 2-6 digits")


class Phone(fields.String):
    """A telephone number in any +84 / 84 / 0 form, loaded as its canonical form
    (E.164 `+84…`; extensions and 1800/1900 service numbers stay bare digits)."""

    def __init__(self, *, allow_service: bool = True, allow_extension: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_service = allow_service
        self.allow_extension = allow_extension

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            number = numbers.to_e164(text)
        except ValueError as exc:
            raise ValidationError(f"not a telephone number: {exc}") from None
        if not self.allow_service and numbers.is_service_number(number):
            raise ValidationError("1800/1900 numbers are inbound only and cannot be used "
                                  "here (never presented as an outbound caller id)")
        if not self.allow_extension and numbers.is_extension(number):
            raise ValidationError("must be a telephone number, not an extension")
        return number


def dump_schema(name: str, load_schema: type[Schema], extra: dict[str, fields.Field],
                exclude: tuple[str, ...] = ()) -> type[Schema]:
    """A response schema with the fields of a request schema (copied, none required) plus
    `extra`. Separate classes keep request rules (validators, defaults) out of responses."""
    attrs: dict[str, Any] = {}
    for key, f in load_schema._declared_fields.items():
        if key in exclude:
            continue
        clone = copy.deepcopy(f)
        clone.required = False
        clone.validators = []
        attrs[key] = clone
    attrs.update(extra)
    return type(name, (Schema,), attrs)
