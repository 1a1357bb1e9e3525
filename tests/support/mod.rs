#![allow(dead_code)]

pub mod cluster;
pub mod operator;
pub mod sim;
