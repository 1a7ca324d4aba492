//! Where the server's own outbound requests may go: the egress policy.
//!
//! Webhook URLs are data an admin (or anyone holding an admin key) types in, so without a
//! policy the server could be made to send requests into the network it runs in (server-side
//! request forgery): to its own loopback services, to private hosts, or to the cloud
//! metadata address `169.254.169.254`. The policy decides, for a host and for each address
//! it resolves to, whether a connection may be made:
//!
//! - [`EgressMode::Public`] (the default): only globally routable unicast addresses. Loopback,
//!   private (RFC 1918, unique-local), shared (CGNAT), link-local, multicast, broadcast,
//!   unspecified, documentation and reserved addresses are refused, also when they hide in
//!   an IPv4-mapped IPv6 address. Hosts on the allow-list ([`EgressPolicy::allow_hosts`]) are
//!   exempt: an operator's way to let webhooks reach a named internal service.
//! - [`EgressMode::Loopback`]: only loopback addresses, and no name but `localhost` is ever
//!   looked up (it is answered without DNS). Tests and development run with it, so that no
//!   test, benchmark or fuzz run sends a packet, or a DNS query, off the machine.
//!
//! The check is made on the address actually connected to, at delivery time (the adapter
//! resolves the name, then asks [`EgressPolicy::check_ip`] for every address), so a name
//! that resolved to a public address at registration and to a private one later (DNS
//! rebinding) is still refused. Pure logic: resolving and connecting are the adapters'.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which addresses outbound requests may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EgressMode {
    /// Globally routable unicast addresses only (production).
    #[default]
    Public,
    /// Loopback addresses only; no DNS lookup but for `localhost` (tests, development).
    Loopback,
}

impl EgressMode {
    /// The name used on the command line and in the environment.
    pub fn as_str(self) -> &'static str {
        match self {
            EgressMode::Public => "public",
            EgressMode::Loopback => "loopback",
        }
    }
}

impl std::str::FromStr for EgressMode {
    type Err = String;
    fn from_str(s: &str) -> Result<EgressMode, String> {
        match s {
            "public" => Ok(EgressMode::Public),
            "loopback" => Ok(EgressMode::Loopback),
            other => Err(format!(
                "{other:?} is not an egress mode: use `public` or `loopback`"
            )),
        }
    }
}

impl std::fmt::Display for EgressMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of an address, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Globally routable unicast.
    Public,
    Loopback,
    /// RFC 1918, IPv6 unique-local, or RFC 6598 shared (carrier-grade NAT) space.
    Private,
    /// 169.254.0.0/16 (where cloud metadata services answer) or fe80::/10.
    LinkLocal,
    Multicast,
    Broadcast,
    /// 0.0.0.0, `::`, or "this network" (0.0.0.0/8).
    Unspecified,
    /// Documentation, benchmarking, protocol-assignment and reserved (240.0.0.0/4) ranges.
    Reserved,
}

impl AddressClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Reserved => "reserved",
        }
    }
}

/// The class of an IPv4 address.
pub fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified() || a == 0 {
        AddressClass::Unspecified
    } else if ip.is_broadcast() {
        AddressClass::Broadcast
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if a >= 240
        // 192.0.0.0/24 (protocol assignments), 192.0.2.0/24, 198.51.100.0/24,
        // 203.0.113.0/24 (documentation), 198.18.0.0/15 (benchmarking).
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 198 && (b == 18 || b == 19))
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// The class of an IPv6 address; IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible and
/// NAT64 (`64:ff9b::/96`) addresses are classed by the IPv4 address they carry.
pub fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let embedded = Ipv4Addr::new(
        (s[6] >> 8) as u8,
        (s[6] & 0xff) as u8,
        (s[7] >> 8) as u8,
        (s[7] & 0xff) as u8,
    );
    // ::a.b.c.d (deprecated IPv4-compatible) and 64:ff9b::a.b.c.d (NAT64).
    if s[..6] == [0, 0, 0, 0, 0, 0] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded);
    }
    if s[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if s[0] & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if s[0] & 0xff00 == 0xff00 {
        AddressClass::Multicast
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        AddressClass::Reserved // documentation
    } else if s[0] & 0xe000 == 0x2000 {
        AddressClass::Public // global unicast 2000::/3
    } else {
        AddressClass::Reserved
    }
}

/// The class of an address.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// What the policy says of a host before anything is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostDecision {
    /// An address literal the policy allows: connect to it (no lookup).
    Connect(IpAddr),
    /// `localhost` under [`EgressMode::Loopback`]: these addresses, without a lookup.
    Localhost,
    /// A name that may be looked up; every address it resolves to must then pass
    /// [`EgressPolicy::check_resolved`] (the flag says whether the host is allow-listed).
    Resolve { allow_listed: bool },
}

/// Where outbound requests may go. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    pub mode: EgressMode,
    /// Hosts (names or address literals, lower case) exempt from the address check in
    /// [`EgressMode::Public`]. Ignored in [`EgressMode::Loopback`], which allows loopback only.
    pub allow_hosts: Vec<String>,
}

impl EgressPolicy {
    /// Only loopback (tests, development).
    pub fn loopback() -> EgressPolicy {
        EgressPolicy {
            mode: EgressMode::Loopback,
            allow_hosts: Vec::new(),
        }
    }

    /// A policy from its mode and a comma-separated allow-list (empty entries ignored).
    pub fn new(mode: EgressMode, allow_hosts: &[String]) -> Result<EgressPolicy, String> {
        let mut hosts = Vec::new();
        for h in allow_hosts.iter().flat_map(|h| h.split(',')) {
            let h = h
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if h.is_empty() {
                continue;
            }
            let is_ip = h.parse::<IpAddr>().is_ok();
            if !is_ip
                && (h.len() > 253
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')))
            {
                return Err(format!(
                    "{h:?} is not a host name or IP address (allow-list entries are exact hosts, \
                     no ports, schemes or wildcards)"
                ));
            }
            hosts.push(h);
        }
        Ok(EgressPolicy {
            mode,
            allow_hosts: hosts,
        })
    }

    fn is_allow_listed(&self, host: &str) -> bool {
        self.mode == EgressMode::Public
            && self
                .allow_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host.trim_end_matches('.')))
    }

    /// Whether an address the request would connect to is allowed (`allow_listed`: the
    /// host it was resolved from, or the literal itself, is on the allow-list).
    pub fn check_resolved(&self, ip: IpAddr, allow_listed: bool) -> Result<(), String> {
        let class = classify(ip);
        match self.mode {
            EgressMode::Loopback if class == AddressClass::Loopback => Ok(()),
            EgressMode::Loopback => Err(format!(
                "{ip} is a {} address and the egress policy is `loopback` (loopback addresses only)",
                class.as_str()
            )),
            EgressMode::Public if class == AddressClass::Public || allow_listed => Ok(()),
            EgressMode::Public => Err(format!(
                "{ip} is a {} address: the egress policy allows public addresses only \
                 (add the host to the egress allow-list to reach it)",
                class.as_str()
            )),
        }
    }

    /// Whether an address literal may be connected to.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        self.check_resolved(ip, self.is_allow_listed(&ip.to_string()))
    }

    /// What to do with the host of a URL (a name, an IPv4 literal or a bracketed or bare
    /// IPv6 literal), before any lookup. An error means no lookup may be made.
    pub fn check_host(&self, host: &str) -> Result<HostDecision, String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.check_ip(ip)?;
            return Ok(HostDecision::Connect(ip));
        }
        let name = host.trim_end_matches('.');
        match self.mode {
            EgressMode::Loopback if name.eq_ignore_ascii_case("localhost") => {
                Ok(HostDecision::Localhost)
            }
            EgressMode::Loopback => Err(format!(
                "{host} is not looked up: the egress policy is `loopback` (only loopback \
                 addresses and `localhost`)"
            )),
            EgressMode::Public => Ok(HostDecision::Resolve {
                allow_listed: self.is_allow_listed(name),
            }),
        }
    }
}

/// The addresses `localhost` stands for under [`EgressMode::Loopback`].
pub const LOCALHOST: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classes_of_the_addresses_an_attacker_would_aim_at() {
        for (a, class) in [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.9.9.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("10.0.0.1", AddressClass::Private),
            ("172.16.5.4", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::Private),
            ("fd00::1", AddressClass::Private),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("224.0.0.1", AddressClass::Multicast),
            ("ff02::1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("192.0.2.7", AddressClass::Reserved),
            ("240.0.0.1", AddressClass::Reserved),
            ("2001:db8::1", AddressClass::Reserved),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
            ("3.101.179.203", AddressClass::Public),
            ("8.8.8.8", AddressClass::Public),
            ("172.32.0.1", AddressClass::Public),
            ("100.128.0.1", AddressClass::Public),
            ("2606:4700::1111", AddressClass::Public),
        ] {
            assert_eq!(classify(ip(a)), class, "{a}");
        }
    }

    #[test]
    fn public_mode_refuses_every_non_public_address_unless_allow_listed() {
        let p = EgressPolicy::default();
        assert!(p.check_ip(ip("3.101.179.203")).is_ok());
        for a in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "::1",
            "::ffff:10.1.1.1",
        ] {
            let e = p.check_ip(ip(a)).unwrap_err();
            assert!(e.contains(a) && e.contains("public addresses only"), "{e}");
        }
        let p =
            EgressPolicy::new(EgressMode::Public, &["hooks.internal, 10.0.0.7".into()]).unwrap();
        assert!(p.check_ip(ip("10.0.0.7")).is_ok());
        assert!(p.check_ip(ip("10.0.0.8")).is_err());
        assert_eq!(
            p.check_host("Hooks.Internal").unwrap(),
            HostDecision::Resolve { allow_listed: true }
        );
        assert!(p.check_resolved(ip("10.9.9.9"), true).is_ok());
        assert_eq!(
            p.check_host("hooks.example.com").unwrap(),
            HostDecision::Resolve {
                allow_listed: false
            }
        );
        assert!(p.check_resolved(ip("10.9.9.9"), false).is_err());
    }

    #[test]
    fn loopback_mode_allows_loopback_only_and_never_asks_for_a_lookup() {
        let p = EgressPolicy::loopback();
        assert_eq!(
            p.check_host("127.0.0.1").unwrap(),
            HostDecision::Connect(ip("127.0.0.1"))
        );
        assert_eq!(
            p.check_host("[::1]").unwrap(),
            HostDecision::Connect(ip("::1"))
        );
        assert_eq!(p.check_host("localhost").unwrap(), HostDecision::Localhost);
        assert_eq!(p.check_host("LOCALHOST.").unwrap(), HostDecision::Localhost);
        for h in [
            "hooks.example.com",
            "3.101.179.203",
            "10.0.0.1",
            "169.254.169.254",
        ] {
            assert!(p.check_host(h).is_err(), "{h}");
        }
        // The allow-list does not widen loopback mode.
        let p = EgressPolicy::new(EgressMode::Loopback, &["hooks.example.com".into()]).unwrap();
        assert!(p.check_host("hooks.example.com").is_err());
        assert!(p.check_resolved(ip("3.3.3.3"), true).is_err());
    }

    #[test]
    fn modes_and_allow_lists_parse_strictly() {
        assert_eq!("public".parse::<EgressMode>().unwrap(), EgressMode::Public);
        assert_eq!(
            "loopback".parse::<EgressMode>().unwrap(),
            EgressMode::Loopback
        );
        assert!("any".parse::<EgressMode>().is_err());
        assert!(EgressPolicy::new(EgressMode::Public, &["http://x".into()]).is_err());
        assert!(EgressPolicy::new(EgressMode::Public, &["*.example.com".into()]).is_err());
        assert!(EgressPolicy::new(EgressMode::Public, &["a.example:80".into()]).is_err());
        let p = EgressPolicy::new(EgressMode::Public, &["[FD00::7]".into(), " ".into()]).unwrap();
        assert_eq!(p.allow_hosts, ["fd00::7"]);
        assert!(p.check_ip(ip("fd00::7")).is_ok());
    }
}
