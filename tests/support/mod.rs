#![allow(dead_code)]

pub mod apis;
pub mod boruta;
pub mod chart;
pub mod cluster;
pub mod manifests;
pub mod operator;
pub mod sim;
pub mod tools;
