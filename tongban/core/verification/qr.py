"""Attestations as QR codes: drawn with segno (SVG or PNG) and read back from an image with zxing-cpp.

>>> token = "eyJhbGciOiJFZERTQSJ9.eyJhIjoxfQ.c2ln"
>>> read_qr(png(token)) == token
True
"""

from __future__ import annotations

import io
from pathlib import Path

import segno

from tongban.core.verification.errors import VerifyError

__all__ = ["MAX_IMAGE_BYTES", "png", "read_qr", "read_qr_file", "svg"]

MAX_IMAGE_BYTES = 20 * 1024 * 1024
_MAX_PIXELS = 40_000_000


def svg(text: str, scale: int = 4) -> str:
    """An inline SVG of the QR code of ``text`` (error correction M)."""
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="svg", scale=scale, xmldecl=False, svgns=True)
    return buf.getvalue().decode("utf-8")


def png(text: str, scale: int = 4) -> bytes:
    """PNG bytes of the QR code of ``text`` (error correction M)."""
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()


def _unreadable(zh: str, en: str, where: str) -> VerifyError:
    return VerifyError("QR_UNREADABLE", f"读不出二维码：{zh}", f"cannot read a QR code: {en}", where)


def read_qr(data: bytes, where: str = "image") -> str:
    """The text of the first QR code in image ``data`` (PNG, JPEG, ...); QR_UNREADABLE otherwise."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise _unreadable("图片过大", f"the image is larger than {MAX_IMAGE_BYTES} bytes", where)
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > _MAX_PIXELS:
                raise _unreadable("图片像素过多", "the image has too many pixels", where)
            img.load()
            results = zxingcpp.read_barcodes(img.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _unreadable("不是可读的图片", f"not a readable image ({type(exc).__name__})", where) from None
    for result in results:
        if result.valid and result.text:
            return str(result.text)
    raise _unreadable("图片中没有二维码", "no QR code in the image", where)


def read_qr_file(path: Path) -> str:
    try:
        data = path.read_bytes()[: MAX_IMAGE_BYTES + 1]
    except OSError as exc:
        raise _unreadable(
            f"无法读取文件：{exc.strerror}", f"cannot read the file: {exc.strerror}", str(path)
        ) from None
    return read_qr(data, str(path))
