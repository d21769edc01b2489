"""The key store: private keys of the nodes this machine runs, readable by their owner only."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tongban.core.trust.canonical import KEY_ID_RE, NODE_RE, TrustError, check_node, key_id, write_atomic

__all__ = ["KeyStore"]

# --- the key store ---------------------------------------------------------------------------------


class KeyStore:
    """Private keys of the nodes this machine runs: ``folder/<node>/<key_id>.pem`` and ``current``.

    Keys are PKCS8 PEM, unencrypted unless a ``passphrase`` is given, mode 0600 in 0700 folders.
    """

    def __init__(self, folder: Path | str, passphrase: bytes | None = None) -> None:
        self.folder = Path(folder)
        self._passphrase = passphrase

    def _node_dir(self, node: str) -> Path:
        return self.folder / check_node(node)

    def nodes(self) -> list[str]:
        """Nodes that have a current key, sorted."""
        if not self.folder.is_dir():
            return []
        return sorted(
            p.name
            for p in self.folder.iterdir()
            if p.is_dir() and (p / "current").is_file() and NODE_RE.match(p.name)
        )

    def current(self, node: str) -> str | None:
        """The current key id of ``node``, or ``None`` when it has none."""
        path = self._node_dir(node) / "current"
        try:
            kid = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise TrustError(
                "KEY_UNREADABLE",
                f"无法读取当前密钥标识：{exc}",
                f"cannot read the current key id: {exc}",
                str(path),
            ) from exc
        if not KEY_ID_RE.match(kid):
            raise TrustError(
                "KEY_UNREADABLE", f"当前密钥标识无效：{kid!r}", f"invalid current key id {kid!r}", str(path)
            )
        return kid

    def generate(self, node: str) -> str:
        """Create a new key for ``node``, make it current, and return its key id."""
        folder = self._node_dir(node)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Ed25519PrivateKey.generate()
        kid = key_id(private.public_key())
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(self._passphrase)
            if self._passphrase
            else serialization.NoEncryption()
        )
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        path = folder / f"{kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        write_atomic(folder / "current", f"{kid}\n".encode(), mode=0o600)
        return kid

    def private(self, node: str, kid: str) -> Ed25519PrivateKey:
        """The private key ``kid`` of ``node``; TrustError KEY_MISSING when there is no such file."""
        path = self._node_dir(node) / f"{kid}.pem"
        if not KEY_ID_RE.match(kid) or not path.is_file():
            raise TrustError(
                "KEY_MISSING",
                f"节点 {node} 没有私钥 {kid}",
                f"node {node} has no private key {kid}",
                str(path),
            )
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=self._passphrase)
        except (OSError, ValueError, TypeError) as exc:
            raise TrustError(
                "KEY_UNREADABLE", f"无法读取私钥：{exc}", f"cannot read the private key: {exc}", str(path)
            ) from exc
        if not isinstance(key, Ed25519PrivateKey) or key_id(key.public_key()) != kid:
            raise TrustError(
                "KEY_UNREADABLE",
                "私钥文件不是其文件名所示的 Ed25519 密钥",
                "the key file is not the Ed25519 key its name says",
                str(path),
            )
        return key

    def signer(self, node: str) -> tuple[str, Ed25519PrivateKey]:
        """The current key of ``node`` as ``(key_id, private key)``; TrustError KEY_MISSING if none."""
        kid = self.current(node)
        if kid is None:
            raise TrustError(
                "KEY_MISSING",
                f"节点 {node} 没有签名密钥（先运行 tongban init）",
                f"node {node} has no signing key (run `tongban init` first)",
                str(self._node_dir(node)),
            )
        return kid, self.private(node, kid)

    def public(self, node: str, kid: str) -> Ed25519PublicKey:
        """The public half of key ``kid`` of ``node``."""
        return self.private(node, kid).public_key()
