//! The library's one error type. Messages say what was expected and what came, and name the
//! layer, tensor or file at fault.

use std::path::PathBuf;

/// Everything that can go wrong in fovea on user input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor does not fit a layer: `conv2: input has shape [8, 3, 28, 28], the layer needs
    /// 32 input channels`. `layer` is empty until the net fills in the node's name.
    #[error("{}{message}", layer_prefix(.layer))]
    Shape { layer: String, message: String },

    /// Convolution or pooling arithmetic that does not work out (a filter larger than the padded
    /// input, a zero stride, a window that covers no input cell).
    #[error("{}{message}", layer_prefix(.layer))]
    Geometry { layer: String, message: String },

    /// A graph that cannot be built or run as asked (unknown node, duplicate name, cycle).
    #[error("net: {0}")]
    Graph(String),

    /// Named tensors that do not match a model: lists every missing, unexpected or misshapen name.
    #[error("{0}")]
    State(String),

    /// A file that cannot be read or written, or whose content is not what it claims.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },

    /// A run stopped on request (Ctrl-C), with how to continue it.
    #[error("{0}")]
    Interrupted(String),

    /// An argument out of its range (a negative rate, an unknown model name).
    #[error("{0}")]
    Invalid(String),
}

fn layer_prefix(layer: &str) -> String {
    if layer.is_empty() {
        String::new()
    } else {
        format!("{layer}: ")
    }
}

impl Error {
    /// A shape error not yet attributed to a named layer.
    pub fn shape(message: impl Into<String>) -> Self {
        Error::Shape { layer: String::new(), message: message.into() }
    }

    /// A geometry error not yet attributed to a named layer.
    pub fn geometry(message: impl Into<String>) -> Self {
        Error::Geometry { layer: String::new(), message: message.into() }
    }

    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File { path: path.into(), message: message.into() }
    }

    /// Attributes a layer-level error to the node `name`, unless it already names one.
    pub fn in_layer(self, name: &str) -> Self {
        match self {
            Error::Shape { layer, message } if layer.is_empty() => {
                Error::Shape { layer: name.to_string(), message }
            }
            Error::Geometry { layer, message } if layer.is_empty() => {
                Error::Geometry { layer: name.to_string(), message }
            }
            other => other,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
