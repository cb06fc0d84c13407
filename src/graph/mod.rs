//! The graph executor: ops over tensor ids, the backward derived from them, a buffer plan, and the
//! compiled `Plan` a step records.

pub mod planner;
