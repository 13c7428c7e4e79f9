//! A minimal i8042 keyboard controller: enough for Linux to initialise it without waiting
//! for timeouts (it reads and writes the controller configuration byte, with
//! `i8042.noaux i8042.nomux i8042.dumbkbd` nothing else), and to reset the machine by
//! writing 0xFE to the command port, which is how a guest without ACPI reboots
//! (`reboot=k`). No keyboard is attached, so it never interrupts.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Command: read the configuration byte.
const CMD_READ_CTR: u8 = 0x20;
/// Command: write the configuration byte (next data byte).
const CMD_WRITE_CTR: u8 = 0x60;
/// Command: controller self-test (answers 0x55).
const CMD_SELF_TEST: u8 = 0xaa;
/// Command: keyboard interface test (answers 0x00).
const CMD_KBD_TEST: u8 = 0xab;
/// Command: write the output port (next data byte); bit 0 clear resets the CPU.
const CMD_WRITE_OUTPUT_PORT: u8 = 0xd1;
/// Command: put the next data byte in the output buffer as if the keyboard sent it.
const CMD_WRITE_KBD_BUFFER: u8 = 0xd2;
/// Command that pulses the CPU reset line.
pub const CMD_RESET_CPU: u8 = 0xfe;

/// Status: output buffer full.
const STATUS_OBF: u8 = 0x01;
/// Status: system flag (self-test passed).
const STATUS_SYS: u8 = 0x04;
/// Status: the last write went to the command port.
const STATUS_CMD: u8 = 0x08;
/// Status: keyboard not inhibited (no keylock).
const STATUS_UNLOCKED: u8 = 0x10;
/// Keyboard device answer "acknowledge".
const KBD_ACK: u8 = 0xfa;
/// Power-on configuration: keyboard interrupt, system flag, scancode translation.
const CTR_DEFAULT: u8 = 0x45;
/// Bytes the output buffer holds at most.
const BUFFER_LIMIT: usize = 16;

/// What a write to the controller asks of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum I8042Action {
    /// Nothing beyond the register access.
    None,
    /// The guest asked for a CPU reset.
    Reset,
}

/// A data-port write the last command is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Pending {
    Ctr,
    OutputPort,
    KbdBuffer,
}

/// The controller's state (kept as is in snapshots: `ctr`, `last_was_command`,
/// `pending` and the output buffer `out`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct I8042 {
    ctr: u8,
    last_was_command: bool,
    pending: Option<Pending>,
    out: VecDeque<u8>,
}

impl Default for I8042 {
    fn default() -> Self {
        I8042 {
            ctr: CTR_DEFAULT,
            last_was_command: false,
            pending: None,
            out: VecDeque::new(),
        }
    }
}

impl I8042 {
    /// A controller in its power-on state.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, byte: u8) {
        if self.out.len() < BUFFER_LIMIT {
            self.out.push_back(byte);
        }
    }

    /// Reads the status register.
    pub fn read_status(&self) -> u8 {
        let mut status = STATUS_SYS | STATUS_UNLOCKED;
        if !self.out.is_empty() {
            status |= STATUS_OBF;
        }
        if self.last_was_command {
            status |= STATUS_CMD;
        }
        status
    }

    /// Reads the data port (pops the output buffer; 0 when empty).
    pub fn read_data(&mut self) -> u8 {
        self.out.pop_front().unwrap_or(0)
    }

    /// Writes the command port.
    pub fn write_command(&mut self, cmd: u8) -> I8042Action {
        self.last_was_command = true;
        self.pending = None;
        match cmd {
            CMD_READ_CTR => self.push(self.ctr),
            CMD_WRITE_CTR => self.pending = Some(Pending::Ctr),
            CMD_SELF_TEST => self.push(0x55),
            CMD_KBD_TEST => self.push(0x00),
            CMD_WRITE_OUTPUT_PORT => self.pending = Some(Pending::OutputPort),
            CMD_WRITE_KBD_BUFFER => self.pending = Some(Pending::KbdBuffer),
            CMD_RESET_CPU => return I8042Action::Reset,
            _ => {}
        }
        I8042Action::None
    }

    /// Writes the data port.
    pub fn write_data(&mut self, value: u8) -> I8042Action {
        self.last_was_command = false;
        match self.pending.take() {
            Some(Pending::Ctr) => self.ctr = value,
            Some(Pending::OutputPort) if value & 1 == 0 => return I8042Action::Reset,
            Some(Pending::OutputPort) => {}
            Some(Pending::KbdBuffer) => self.push(value),
            // A command for the (absent) keyboard: acknowledge it.
            None => self.push(KBD_ACK),
        }
        I8042Action::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fe_on_the_command_port_resets() {
        let mut c = I8042::new();
        assert_eq!(c.write_command(CMD_RESET_CPU), I8042Action::Reset);
        assert_eq!(c.write_data(CMD_RESET_CPU), I8042Action::None);
        assert_eq!(c.write_command(0xa7), I8042Action::None);
    }

    #[test]
    fn ctr_reads_back_what_linux_writes() {
        let mut c = I8042::new();
        assert_eq!(c.read_status() & STATUS_OBF, 0);
        c.write_command(CMD_READ_CTR);
        assert_ne!(c.read_status() & STATUS_OBF, 0);
        assert_eq!(c.read_data(), CTR_DEFAULT);
        assert_eq!(c.read_status() & STATUS_OBF, 0);
        c.write_command(CMD_WRITE_CTR);
        c.write_data(0x65);
        c.write_command(CMD_READ_CTR);
        assert_eq!(c.read_data(), 0x65);
    }

    #[test]
    fn self_test_output_port_reset_and_buffer_bound() {
        let mut c = I8042::new();
        c.write_command(CMD_SELF_TEST);
        assert_eq!(c.read_data(), 0x55);
        c.write_command(CMD_WRITE_OUTPUT_PORT);
        assert_eq!(c.write_data(0x01), I8042Action::None);
        c.write_command(CMD_WRITE_OUTPUT_PORT);
        assert_eq!(c.write_data(0xfe), I8042Action::Reset);
        for _ in 0..100 {
            c.write_data(0xf4);
        }
        assert_eq!(c.out.len(), BUFFER_LIMIT);
        assert_eq!(c.read_data(), KBD_ACK);
    }
}
