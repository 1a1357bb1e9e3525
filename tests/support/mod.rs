#![allow(dead_code)]

pub mod apis;
pub mod boruta;
pub mod chart;
pub mod cluster;
pub mod env;
pub mod kinds;
pub mod manifests;
pub mod operator;
pub mod sim;
pub mod tools;
