// Renders an Ollama TEMPLATE the way Ollama's server does, for tests/unit/test_modelfile.py.
//
// Reads {"template", "messages", "tools"} (the /api/chat request's JSON) on stdin, writes the prompt.
// Go's own text/template and encoding/json do the work; the types are Ollama's (api/types.go and
// template/template.go, 2026): tools decoded into its structs (unknown schema keys dropped, nested
// properties in their order, the top level's as a map), arguments as a map, messages collated, and
// the `json` template function. Written for this test from Ollama's source, not copied from it.
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"text/template"
)

type PropertyType []string

func (pt *PropertyType) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*pt = []string{s}
		return nil
	}
	var a []string
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	*pt = a
	return nil
}

func (pt PropertyType) MarshalJSON() ([]byte, error) {
	if len(pt) == 1 {
		return json.Marshal(pt[0])
	}
	return json.Marshal([]string(pt))
}

// PropertiesMap keeps insertion order, as Ollama's ToolPropertiesMap (an ordered map) does.
type PropertiesMap struct {
	Keys []string
	Vals map[string]ToolProperty
}

func (m *PropertiesMap) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return err
	}
	m.Vals = map[string]ToolProperty{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k := t.(string)
		var p ToolProperty
		if err := dec.Decode(&p); err != nil {
			return err
		}
		if _, seen := m.Vals[k]; !seen {
			m.Keys = append(m.Keys, k)
		}
		m.Vals[k] = p
	}
	_, err := dec.Token()
	return err
}

func (m PropertiesMap) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range m.Keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(m.Vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type ToolProperty struct {
	AnyOf       []ToolProperty `json:"anyOf,omitempty"`
	Type        PropertyType   `json:"type,omitempty"`
	Items       any            `json:"items,omitempty"`
	Description string         `json:"description,omitempty"`
	Enum        []any          `json:"enum,omitempty"`
	Properties  *PropertiesMap `json:"properties,omitempty"`
	Required    []string       `json:"required,omitempty"`
}

type Tool struct {
	Type     string `json:"type"`
	Items    any    `json:"items,omitempty"`
	Function struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		Parameters  struct {
			Type       string         `json:"type"`
			Defs       any            `json:"$defs,omitempty"`
			Items      any            `json:"items,omitempty"`
			Required   []string       `json:"required,omitempty"`
			Properties *PropertiesMap `json:"properties"`
		} `json:"parameters"`
	} `json:"function"`
}

// what the template sees (template.go's templateTool…): the top level's properties as a Go map
type templateParameters struct {
	Type       string                  `json:"type"`
	Defs       any                     `json:"$defs,omitempty"`
	Items      any                     `json:"items,omitempty"`
	Required   []string                `json:"required,omitempty"`
	Properties map[string]ToolProperty `json:"properties"`
}

type templateFunction struct {
	Name        string             `json:"name"`
	Description string             `json:"description"`
	Parameters  templateParameters `json:"parameters"`
}

type templateTool struct {
	Type     string           `json:"type"`
	Items    any              `json:"items,omitempty"`
	Function templateFunction `json:"function"`
}

type ToolCall struct {
	ID       string `json:"id,omitempty"`
	Function struct {
		Index     int            `json:"index"`
		Name      string         `json:"name"`
		Arguments map[string]any `json:"arguments"`
	} `json:"function"`
}

type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	Thinking   string     `json:"thinking,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolName   string     `json:"tool_name,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

type request struct {
	Template string    `json:"template"`
	Messages []Message `json:"messages"`
	Tools    []Tool    `json:"tools"`
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		panic(err)
	}
	var collated []*Message // template.go's collate
	for i := range req.Messages {
		m := &req.Messages[i]
		if n := len(collated); n > 0 && collated[n-1].Role == m.Role && m.Role != "tool" {
			collated[n-1].Content += "\n\n" + m.Content
		} else {
			collated = append(collated, m)
		}
	}
	var tools []templateTool
	for _, t := range req.Tools {
		var props map[string]ToolProperty
		if t.Function.Parameters.Properties != nil {
			props = t.Function.Parameters.Properties.Vals
		}
		p := t.Function.Parameters
		tools = append(tools, templateTool{t.Type, t.Items, templateFunction{t.Function.Name, t.Function.Description,
			templateParameters{p.Type, p.Defs, p.Items, p.Required, props}}})
	}
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl := template.Must(template.New("").Option("missingkey=zero").Funcs(funcs).Parse(req.Template))
	data := map[string]any{"Messages": collated, "Tools": tools, "System": "", "Response": ""}
	if err := tmpl.Execute(os.Stdout, data); err != nil {
		panic(err)
	}
}
