"""The desk's forms, read so that a form over the desk's limits comes back as the form.

Starlette's parser raises at the first part past a limit (too many files or fields, a field over
1 MB), and everything read before that part is lost with it: the clerk would get a bare error in
place of a form they spent minutes on. Here a part past a limit is skipped, never stored, so
memory stays bounded, and the form is handed back with what was kept and the problem in the
clerk's words. A body over the size limit is read only as far as its fields before the first file
(so they are kept too), then no further.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

from registry_service.http import BODY_CUT

#: starlette's bound on one field of a form (the scanned document is a file, not a field)
MAX_FIELD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class FormLimits:
    files: int
    fields: int
    body_bytes: int
    #: what the one file of the form is, for the words of a refusal ("scanned document")
    file_label: str = "file"
    #: the largest file the form takes, as the form states it (the body may hold the fields too)
    file_bytes: int | None = None


@dataclass
class DeskForm:
    """A desk form as read: the first value of each field, the files (only when nothing went
    wrong), and what went wrong (``problem``, with the HTTP ``status`` it calls for)."""

    values: dict[str, str]
    files: dict[str, UploadFile] = field(default_factory=dict)
    problem: str | None = None
    status: int = 200

    async def close(self) -> None:
        for upload in self.files.values():
            await upload.close()


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


class _Lenient(MultiPartParser):
    """Starlette's multipart parser, but a part past a limit is skipped and remembered instead of
    ending the parse."""

    def __init__(self, request: Request, stream: AsyncGenerator[bytes, None], limits: FormLimits) -> None:
        super().__init__(request.headers, stream, max_files=limits.files, max_fields=limits.fields,
                         max_part_size=MAX_FIELD_BYTES)  # fmt: skip
        self.limits = limits
        self.problem: str | None = None
        self.status = 200
        self.file_began = False
        self._skip = False

    def refuse(self, problem: str, status: int) -> None:
        if self.problem is None:  # the first problem is the one a clerk can act on
            self.problem, self.status = problem, status
        self._skip = True

    def on_part_begin(self) -> None:
        self._skip = False
        super().on_part_begin()

    def on_headers_finished(self) -> None:
        try:
            super().on_headers_finished()
        except MultiPartException:
            if self._current_files > self.max_files:
                self.refuse(_too_many_files(self._current_files, self.limits), 400)
            elif self._current_fields > self.max_fields:
                self.refuse(_too_many_fields(int(self.max_fields)), 400)
            else:
                self.refuse("A part of the form had no name, so the form could not be read: reload the page "
                            "and send the form again.", 400)  # fmt: skip
            return
        if self._current_part.file is not None:
            self.file_began = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._skip:
            return
        try:
            super().on_part_data(data, start, end)
        except MultiPartException:
            self.refuse(_too_long(self._current_part.field_name), 413)
            self._current_part.data.clear()

    def on_part_end(self) -> None:
        if not self._skip:
            super().on_part_end()

    def discard_files(self) -> None:
        """Close every file this parse opened, a part-read one too (the form is not acted on)."""
        for spooled in self._files_to_close_on_error:
            spooled.close()


async def read_form(request: Request, limits: FormLimits) -> DeskForm:
    """Read ``request``'s form within ``limits``; never raises for a form over them (the returned
    form says what went wrong and keeps the fields it could)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return await _read_urlencoded(request, limits)
    if not content_type.startswith("multipart/form-data"):
        return DeskForm({})  # not a form a page sent: no fields, so its CSRF check refuses it
    return await _read_multipart(request, limits)


async def _read_multipart(request: Request, limits: FormLimits) -> DeskForm:
    declared = request.headers.get("content-length", "")
    too_large = declared.isdigit() and int(declared) > limits.body_bytes
    seen = 0

    async def bounded() -> AsyncGenerator[bytes, None]:
        nonlocal seen, too_large
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limits.body_bytes:  # what came before the limit is read: it may hold the fields
                too_large = True
                yield chunk[: len(chunk) - (seen - limits.body_bytes)]
                return
            yield chunk
            # the fields come before the file: they are all in once a file of a body too large begins
            if too_large and parser.file_began:
                return

    parser = _Lenient(request, bounded(), limits)
    try:
        form = await parser.parse()
    except MultiPartException:  # a body cut short, or not multipart at all
        form = FormData(parser.items)
        if parser.problem is None and not too_large:
            parser.refuse("The form could not be read (it arrived incomplete): send it again.", 400)
    values: dict[str, str] = {}
    files: dict[str, UploadFile] = {}
    for name, value in form.multi_items():
        if isinstance(value, str):
            values.setdefault(name, value)
        else:
            files.setdefault(name, value)
    result = DeskForm(values, files, parser.problem, parser.status)
    if too_large or request.scope.get(BODY_CUT):
        result.problem, result.status = _too_large(limits), 413
    if result.problem is not None:
        parser.discard_files()  # a form that went wrong is shown again, never acted on
        result.files = {}
    return result


def _too_large(limits: FormLimits) -> str:
    if limits.file_bytes is not None:
        return (f"The {limits.file_label} is larger than {_megabytes(limits.file_bytes)}, the most the desk takes: "
                "scan it at a lower resolution, or give its SHA-256 instead. Nothing was saved.")  # fmt: skip
    return f"The form was larger than {_megabytes(limits.body_bytes)}, the most the desk takes: nothing was saved."


def _too_many_files(carried: int, limits: FormLimits) -> str:
    if limits.files == 0:
        return "The form carried a file, and it takes none: send it again without one."
    takes = f"one {limits.file_label}" if limits.files == 1 else f"{limits.files} {limits.file_label}s"
    return f"The form carried {carried} files where it takes {takes}: choose {takes} and send the form again."


def _too_many_fields(limit: int) -> str:
    return (f"The form carried more than {limit} fields, more than it has: nothing was saved. Check what is "
            "below and send the form again.")  # fmt: skip


def _too_long(name: str) -> str:
    return f"The {name or 'unnamed'} field is longer than {_megabytes(MAX_FIELD_BYTES)}: shorten it and send the form again."


class _LenientUrlencoded(FormParser):
    """Starlette's parser of url-encoded forms, but a field past a limit is skipped and remembered."""

    def __init__(self, request: Request, stream: AsyncGenerator[bytes, None], limits: FormLimits) -> None:
        super().__init__(request.headers, stream, max_fields=limits.fields, max_part_size=MAX_FIELD_BYTES)
        self.problem: str | None = None
        self.status = 200
        self.seen = 0
        self._skip = False

    def refuse(self, problem: str, status: int) -> None:
        if self.problem is None:
            self.problem, self.status = problem, status
        self._skip = True

    def on_field_start(self) -> None:
        self._skip = False
        super().on_field_start()

    def on_field_name(self, data: bytes, start: int, end: int) -> None:
        if not self._skip:
            try:
                super().on_field_name(data, start, end)
            except MultiPartException:
                self.refuse(_too_long(""), 413)

    def on_field_data(self, data: bytes, start: int, end: int) -> None:
        if not self._skip:
            try:
                super().on_field_data(data, start, end)
            except MultiPartException:
                self.refuse(_too_long(self._field_name.decode("latin-1")), 413)
                self._field_value.clear()

    def on_field_end(self) -> None:
        self.seen += 1
        if self.seen > self.max_fields:
            self.refuse(_too_many_fields(int(self.max_fields)), 400)
        if not self._skip:
            super().on_field_end()


async def _read_urlencoded(request: Request, limits: FormLimits) -> DeskForm:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.body_bytes:
        return DeskForm({}, problem=_too_large(limits), status=413)
    seen = 0
    cut = False

    async def bounded() -> AsyncGenerator[bytes, None]:
        nonlocal seen, cut
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limits.body_bytes:
                cut = True
                return
            yield chunk

    parser = _LenientUrlencoded(request, bounded(), limits)
    form = await parser.parse()
    values: dict[str, str] = {}
    for name, value in form.multi_items():
        if isinstance(value, str):
            values.setdefault(name, value)
    if cut or request.scope.get(BODY_CUT):
        return DeskForm(values, problem=_too_large(limits), status=413)
    return DeskForm(values, problem=parser.problem, status=parser.status)
