//! `wgpt sample --interactive`: the source notebook's playground. It asks for a start text, a number of
//! tokens and a temperature, each with its default shown (`start text [\n]:`, `tokens [500]:`,
//! `temperature [0.8]:`; an empty answer takes it), streams the continuation, and asks again until the
//! input ends. At a terminal the questions have line editing and history (rustyline); otherwise the
//! answers are read line by line from stdin, so a script or a test can drive it through a pipe.
//!
//! A start text may spell a newline `\n`, a tab `\t` and a backslash `\\`. A bad answer (a text the
//! tokenizer cannot encode, a prompt longer than the context, a count or temperature that does not
//! parse or is out of range) prints one error line and starts the round again. Round `r` (from 0)
//! samples with seed `--seed + r`, so asking the same twice gives another continuation.

use std::io::{BufRead, IsTerminal, Write};

use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use crate::cli::sample::{check_prompt, SampleArgs, Session};
use crate::error::{Error, Result};
use crate::model::GptConfig;
use crate::sample::Sampling;

/// Asks and generates until the input ends.
pub(crate) fn run(
    session: &mut Session,
    args: &SampleArgs,
    config: &GptConfig,
    out: &mut impl Write,
) -> Result<()> {
    let mut input = Input::new()?;
    let questions = [
        format!("start text [{}]: ", escape(&args.prompt)),
        format!("tokens [{}]: ", args.max_new_tokens),
        format!("temperature [{}]: ", args.temperature),
    ];
    for round in 0u64.. {
        let mut answers = Vec::with_capacity(questions.len());
        for (i, question) in questions.iter().enumerate() {
            match input.ask(i, question, out)? {
                Some(answer) => answers.push(answer),
                None => return Ok(()),
            }
        }
        match settings(session, args, config, &answers) {
            Ok((prompt, count, sampling)) => {
                let seed = args.seed.wrapping_add(round);
                session.run(&prompt, count, &sampling, seed, out)?;
            }
            Err(e) => eprintln!("error: {e}"),
        }
    }
    Ok(())
}

/// A round's prompt ids, token count and sampling from the answers (an empty one takes the flag's
/// value).
fn settings(
    session: &Session,
    args: &SampleArgs,
    config: &GptConfig,
    answers: &[String],
) -> Result<(Vec<u32>, usize, Sampling)> {
    let [start, count, temperature] = answers else {
        return Err(Error::Invalid("three answers are needed".into()));
    };
    let start = match start.is_empty() {
        true => args.prompt.clone(),
        false => unescape(start),
    };
    let prompt = session.tokenizer.encode(&start)?;
    check_prompt(&prompt, config)?;
    let count = match count.trim() {
        "" => args.max_new_tokens,
        text => text
            .parse()
            .map_err(|_| Error::Invalid(format!("tokens: {text:?} is not a whole number ≥ 0")))?,
    };
    let temperature = match temperature.trim() {
        "" => args.temperature,
        text => text
            .parse()
            .map_err(|_| Error::Invalid(format!("temperature: {text:?} is not a number")))?,
    };
    let sampling = Sampling {
        temperature,
        top_k: args.top_k,
        top_p: args.top_p,
    };
    sampling.check()?;
    Ok((prompt, count, sampling))
}

/// Where the answers come from: a terminal, with an editor (and its history) per question, or lines
/// of a pipe or file.
enum Input {
    Terminal(Vec<DefaultEditor>),
    Lines(std::io::StdinLock<'static>),
}

impl Input {
    fn new() -> Result<Self> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(Input::Lines(stdin.lock()));
        }
        let editors = (0..3)
            .map(|_| DefaultEditor::new().map_err(|e| terminal(e.to_string())))
            .collect::<Result<_>>()?;
        Ok(Input::Terminal(editors))
    }

    /// The answer to question `i` without its line end; None at the end of input (or Ctrl-C, Ctrl-D
    /// at a terminal).
    fn ask(&mut self, i: usize, question: &str, out: &mut impl Write) -> Result<Option<String>> {
        match self {
            Input::Terminal(editors) => match editors[i].readline(question) {
                Ok(line) => {
                    if !line.is_empty() {
                        let _ = editors[i].add_history_entry(line.as_str());
                    }
                    Ok(Some(line))
                }
                Err(ReadlineError::Eof | ReadlineError::Interrupted) => Ok(None),
                Err(e) => Err(terminal(e.to_string())),
            },
            Input::Lines(lines) => {
                write!(out, "{question}")
                    .and_then(|_| out.flush())
                    .map_err(|e| terminal(e.to_string()))?;
                let mut line = String::new();
                match lines.read_line(&mut line) {
                    Ok(0) => Ok(None),
                    Ok(_) => {
                        let end = line.trim_end_matches(['\n', '\r']).len();
                        line.truncate(end);
                        Ok(Some(line))
                    }
                    Err(e) => Err(terminal(e.to_string())),
                }
            }
        }
    }
}

fn terminal(detail: String) -> Error {
    Error::Invalid(format!("reading the playground's answers: {detail}"))
}

/// `text` with newlines, tabs and backslashes spelled `\n`, `\t`, `\\` (a default shown in a question).
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

/// The inverse of [`escape`]; any other backslash stays as it is.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(other) => out.extend(['\\', other]),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_escapes_give_the_characters_a_line_cannot_hold() {
        assert_eq!(
            unescape(r"KING:\nwhat\tnow \\ \q"),
            "KING:\nwhat\tnow \\ \\q"
        );
        for text in ["\n", "a\\b\tc\n", "plain"] {
            assert_eq!(unescape(&escape(text)), text);
        }
        assert_eq!(escape("\n"), r"\n");
    }
}
