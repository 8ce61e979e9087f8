//! What the eBPF capture program (`agent-ebpf`, in the kernel) and the agent (user space) must agree on, in one
//! `no_std` crate with no dependencies so that both sides compile it and the host can test it:
//!
//! - [`record`]: the layout of one ring buffer record (metadata, then the captured bytes) and the record size
//!   classes the kernel reserves;
//! - [`maps`]: map names, the slots of the configuration and counter arrays;
//! - [`parse`]: finding the addresses and TCP ports of a packet through a byte loader (the kernel's
//!   `bpf_skb_load_bytes`, or a slice in tests);
//! - [`filter`]: deciding whether a parsed packet matches the configured ports and CIDRs.
#![no_std]

pub mod filter;
pub mod maps;
pub mod parse;
pub mod record;
