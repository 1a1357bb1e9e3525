#![allow(dead_code)]

pub mod apis;
pub mod chart;
pub mod cluster;
pub mod operator;
pub mod sim;
