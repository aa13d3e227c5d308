"""Types every contract model shares: the strict base, the precision, a cross-field error."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class CombinationError(ValueError):
    """Values that are each valid but cannot go together (a cross-field rule).

    `fields` are the dotted paths involved, relative to the model that raises it; the study
    expansion reads them to tell a combination the sweep made (skipped, with this reason) from
    one the file wrote outright (an error at its line).
    """

    def __init__(self, message: str, *fields: str) -> None:
        super().__init__(message)
        self.fields = fields


class Strict(BaseModel):
    """Base of every contract model: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
