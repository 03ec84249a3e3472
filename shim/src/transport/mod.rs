pub mod arena;
pub mod ring;
