#![allow(dead_code)]

pub mod chart;
pub mod cluster;
pub mod manifests;
pub mod operator;
pub mod sim;
