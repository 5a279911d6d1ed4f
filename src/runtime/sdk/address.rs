//! Which addresses a script's outgoing connections may not reach by default (S-10): the node
//! itself, the operator's private networks, link-local (cloud metadata) and everything else
//! that is not a public unicast address.
//!
//! [`refused_class`] is a pure function of the address; `fetch` applies it to IP-literal URLs
//! and to every address a host name resolves to, at connect time, unless the host is named
//! exactly in `--fetch-allow`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kind of non-public address `ip` is, or `None` for a public unicast address.
pub fn refused_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

/// Whether `addr` lies in `network/prefix`.
fn in_v4(addr: Ipv4Addr, network: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(addr) & mask == u32::from(Ipv4Addr::from(network)) & mask
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        // Most specific first: the metadata service is inside link-local.
        ([169, 254, 169, 254], 32, "cloud metadata"),
        ([255, 255, 255, 255], 32, "broadcast"),
        ([0, 0, 0, 0], 8, "unspecified (\"this network\")"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "shared (carrier-grade NAT)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "reserved (IETF protocol assignments)"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "reserved (6to4 relay)"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    RANGES
        .iter()
        .find(|(network, prefix, _)| in_v4(ip, *network, *prefix))
        .map(|(_, _, class)| *class)
}

/// Whether `addr` lies in `network/prefix`.
fn in_v6(addr: Ipv6Addr, network: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(addr) & mask == u128::from(network) & mask
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    if ip == Ipv6Addr::UNSPECIFIED {
        return Some("unspecified");
    }
    if ip == Ipv6Addr::LOCALHOST {
        return Some("loopback");
    }
    let segments = ip.segments();
    let octets = ip.octets();
    let embedded = |at: usize| {
        let mut four = [0u8; 4];
        if let Some(part) = octets.get(at..at + 4) {
            four.copy_from_slice(part);
        }
        Ipv4Addr::from(four)
    };
    // Forms that carry an IPv4 address reach that address: judge it instead.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_class(v4);
    }
    if segments[..6] == [0; 6] {
        // IPv4-compatible (::a.b.c.d, deprecated).
        return Some(v4_class(embedded(12)).unwrap_or("reserved (IPv4-compatible)"));
    }
    let net = |text: &str| text.parse::<Ipv6Addr>().unwrap_or(Ipv6Addr::UNSPECIFIED);
    if in_v6(ip, net("64:ff9b::"), 96) {
        return v4_class(embedded(12));
    }
    if in_v6(ip, net("2002::"), 16) {
        return v4_class(embedded(2));
    }
    const RANGES: &[(&str, u32, &str)] = &[
        ("fd00:ec2::254", 128, "cloud metadata"),
        ("64:ff9b:1::", 48, "reserved (local NAT64)"),
        ("100::", 64, "reserved (discard-only)"),
        ("2001::", 32, "reserved (Teredo)"),
        ("2001:2::", 48, "benchmarking"),
        ("2001:db8::", 32, "documentation"),
        ("3fff::", 20, "documentation"),
        ("fc00::", 7, "unique-local (private)"),
        ("fe80::", 10, "link-local"),
        ("fec0::", 10, "site-local (private)"),
        ("ff00::", 8, "multicast"),
    ];
    RANGES
        .iter()
        .find(|(network, prefix, _)| in_v6(ip, net(network), *prefix))
        .map(|(_, _, class)| *class)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> Option<&'static str> {
        refused_class(text.parse().unwrap())
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn each_ipv4_range_is_refused() {
        let cases = [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("0.0.0.0", "unspecified (\"this network\")"),
            ("0.1.2.3", "unspecified (\"this network\")"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("100.127.255.255", "shared (carrier-grade NAT)"),
            ("169.254.0.1", "link-local"),
            ("169.254.169.254", "cloud metadata"),
            ("192.0.0.192", "reserved (IETF protocol assignments)"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("192.88.99.1", "reserved (6to4 relay)"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.254", "reserved"),
            ("255.255.255.255", "broadcast"),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn each_ipv6_range_is_refused() {
        let cases = [
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fc00::1", "unique-local (private)"),
            ("fdff:ffff::1", "unique-local (private)"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local (private)"),
            ("ff02::1", "multicast"),
            ("ff0e::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("2001:2::1", "benchmarking"),
            ("2001:0:4136:e378::1", "reserved (Teredo)"),
            ("100::1", "reserved (discard-only)"),
            ("64:ff9b:1::1", "reserved (local NAT64)"),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn ipv4_inside_ipv6_is_judged_as_ipv4() {
        let cases = [
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::ffff:10.1.2.3", "private"),
            ("::127.0.0.1", "loopback"),
            ("::192.168.0.1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:101::1", "private"),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
        assert_eq!(class("::8.8.8.8"), Some("reserved (IPv4-compatible)"));
    }
}
