//! Administration across contexts (SPEC §7): one reader of the process
//! table with each process's context, the formats vps, vpstree, vtop and
//! vserver-stat print, and signals sent to a context's processes.

pub mod kill;
pub mod proctable;
pub mod ps;
pub mod report;
pub mod top;
