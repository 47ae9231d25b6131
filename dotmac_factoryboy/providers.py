"""ISPProvider: a Faker provider for ISP data (addresses, MACs with real vendor OUIs, numbers)."""

from __future__ import annotations

import ipaddress

from faker.providers import BaseProvider

VENDOR_OUIS: dict[str, tuple[str, ...]] = {
    "cisco": ("00:00:0C", "00:01:42", "00:1B:54", "00:1A:A2", "00:25:B5"),
    "mikrotik": ("4C:5E:0C", "D4:CA:6D", "6C:3B:6B", "E4:8D:8C", "B8:69:F4"),
    "ubiquiti": ("00:15:6D", "00:27:22", "04:18:D6", "24:A4:3C", "F0:9F:C2"),
    "juniper": ("00:05:85", "00:10:DB", "00:12:1E", "2C:6B:F5", "3C:61:04"),
    "huawei": ("00:E0:FC", "00:18:82", "28:6E:D4", "48:46:FB", "00:25:9E"),
    "nokia": ("00:0E:ED", "00:0B:E1", "00:02:EE", "00:1A:DC"),
    "zte": ("00:15:EB", "00:19:C6", "00:1E:73", "34:4B:50", "00:26:ED"),
}
"""IEEE-registered OUI prefixes per vendor (checked against the IEEE registry in the tests)."""

PRIVATE_NETWORKS = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


def vendor_ouis(vendor: str) -> tuple[str, ...]:
    """The OUIs of ``vendor``; ``ValueError`` naming the known vendors otherwise."""
    try:
        return VENDOR_OUIS[vendor.lower()]
    except KeyError:
        raise ValueError(
            f"Unknown MAC vendor {vendor!r}; known vendors: {', '.join(sorted(VENDOR_OUIS))}."
        ) from None


def vendor_mac(vendor: str, serial: int) -> str:
    """A MAC of ``vendor`` unique per ``serial`` (24 bits per OUI, so 16M+ per vendor)."""
    ouis = vendor_ouis(vendor)
    oui = ouis[(serial >> 24) % len(ouis)]
    low = serial & 0xFFFFFF
    return f"{oui}:{low >> 16:02X}:{(low >> 8) & 0xFF:02X}:{low & 0xFF:02X}"


class ISPProvider(BaseProvider):
    """Faker provider: ``factory.Faker("service_id")`` and friends."""

    # Named apart from Faker's own ``ipv4_private(network=..., address_class=...)`` and
    # ``ipv4_public``, which adding this provider must never shadow.
    def private_ipv4(self) -> str:
        """An RFC 1918 address (always ``is_private``)."""
        network = self.random_element(PRIVATE_NETWORKS)
        offset = self.generator.random.randrange(1, network.num_addresses - 1)
        return str(network.network_address + offset)

    def public_ipv4(self) -> str:
        """A globally routable unicast address (always ``is_global``)."""
        while True:
            address = ipaddress.IPv4Address(self.generator.random.getrandbits(32))
            if address.is_global and not address.is_multicast:
                return str(address)

    def mac_address_vendor(self, vendor: str) -> str:
        """A random MAC address starting with one of ``vendor``'s real OUIs."""
        oui = self.random_element(vendor_ouis(vendor))
        tail = ":".join(f"{self.generator.random.getrandbits(8):02X}" for _ in range(3))
        return f"{oui}:{tail}"

    def service_id(self) -> str:
        """``SRV-123456``."""
        return f"SRV-{self.random_number(digits=6, fix_len=True)}"

    def customer_number(self) -> str:
        """``CUST-12345``."""
        return f"CUST-{self.random_number(digits=5, fix_len=True)}"

    def account_number(self) -> str:
        """``ACC-12345678``."""
        return f"ACC-{self.random_number(digits=8, fix_len=True)}"

    def invoice_number(self) -> str:
        """``INV-2026-123456``."""
        year = self.random_int(2020, 2029)  # a fixed range: the same seed gives the same data
        return f"INV-{year}-{self.random_number(digits=6, fix_len=True)}"

    def serial_number(self) -> str:
        """A device serial such as ``FTX1234A5BC``."""
        return self.bothify("???####?#??").upper()
