pub mod cgroup;
pub mod elf;
pub mod modules;
pub mod procinfo;
pub mod real;
pub mod region;
pub mod setxid;
pub mod underlying;
