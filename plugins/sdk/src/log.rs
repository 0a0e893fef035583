//! One-line log helpers over the host's `log` import (the host adds plugin and account).

use crate::LogLevel;

pub fn log(level: LogLevel, message: impl AsRef<str>) {
    crate::imports::log(level, message.as_ref())
}
pub fn debug(message: impl AsRef<str>) {
    log(LogLevel::Debug, message)
}
pub fn info(message: impl AsRef<str>) {
    log(LogLevel::Info, message)
}
pub fn warn(message: impl AsRef<str>) {
    log(LogLevel::Warn, message)
}
pub fn error(message: impl AsRef<str>) {
    log(LogLevel::Error, message)
}
