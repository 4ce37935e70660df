"""The `high` wrap of `wraps_are_pinned` (runtime/identity/src/wrap.rs), computed independently:
pyca/cryptography for X25519, Ed25519, HKDF-SHA256 and ChaCha20-Poly1305, HChaCha20 by hand
(RFC draft-irtf-cfrg-xchacha). Prints the wrap in hex. Run: python3 high_wrap.py"""
import struct
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives import serialization as s, hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
def raw(pk): return pk.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
secrets = bytes(i+1 for i in range(96))
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
rid = raw(Ed25519PrivateKey.from_private_bytes(secrets[:32]).public_key())
R = raw(X25519PrivateKey.from_private_bytes(secrets[32:64]).public_key())
e = X25519PrivateKey.from_private_bytes(bytes(range(0x80,0xa0)))
E = raw(e.public_key())
shared = e.exchange(X25519PublicKey.from_public_bytes(R))
kek = HKDF(hashes.SHA256(), 32, E+R, b"zhtp/wrap/v1/x25519").derive(shared)
def rotl(v,c): return ((v<<c)&0xffffffff)|(v>>(32-c))
def qr(x,a,b,c,d):
    x[a]=(x[a]+x[b])&0xffffffff; x[d]=rotl(x[d]^x[a],16)
    x[c]=(x[c]+x[d])&0xffffffff; x[b]=rotl(x[b]^x[c],12)
    x[a]=(x[a]+x[b])&0xffffffff; x[d]=rotl(x[d]^x[a],8)
    x[c]=(x[c]+x[d])&0xffffffff; x[b]=rotl(x[b]^x[c],7)
def hchacha(key, n16):
    x = list(struct.unpack('<4I', b"expand 32-byte k")) + list(struct.unpack('<8I', key)) + list(struct.unpack('<4I', n16))
    for _ in range(10):
        qr(x,0,4,8,12);qr(x,1,5,9,13);qr(x,2,6,10,14);qr(x,3,7,11,15)
        qr(x,0,5,10,15);qr(x,1,6,11,12);qr(x,2,7,8,13);qr(x,3,4,9,14)
    return struct.pack('<8I', *(x[0:4]+x[12:16]))
nonce = bytes(24)
sub = hchacha(kek, nonce[:16])
head = rid + b"\x01"
ct = ChaCha20Poly1305(sub).encrypt(b"\0\0\0\0"+nonce[16:], bytes([7]*32), head + b"content address")
print((head + E + ct).hex())
