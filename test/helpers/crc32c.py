"""CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and the mask LevelDB / TF store, for the test helpers.

Written from the definition (tensorflow/core/lib/hash/crc32c.h: Mask rotates right by 15 and adds 0xa282ead8),
independently of kerasopt's TypeScript implementation.
"""
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
